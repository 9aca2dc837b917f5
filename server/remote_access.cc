#include "server/remote_access.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <utility>

#include <grpcpp/security/server_credentials.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace stimloop {
namespace {

constexpr absl::string_view kHealthServicePrefix = "/grpc.health.v1.Health/";
constexpr absl::string_view kBearerPrefix = "Bearer ";

// The host part of "HOST:PORT" / "[HOST]:PORT"; false when there is none.
bool SplitHost(absl::string_view listen, absl::string_view* host) {
  if (absl::StartsWith(listen, "[")) {
    const size_t close = listen.find(']');
    if (close == absl::string_view::npos || close + 1 >= listen.size() ||
        listen[close + 1] != ':') {
      return false;
    }
    *host = listen.substr(1, close - 1);
    return true;
  }
  const size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  *host = listen.substr(0, colon);
  // An unbracketed IPv6 host ("::1:50051") is ambiguous: not loopback.
  return host->find(':') == absl::string_view::npos;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", flag, " '", path, "'"));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", flag, " '", path, "'"));
  }
  return content.str();
}

bool IsHeaderSafe(absl::string_view token) {
  for (const char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace

bool IsLoopbackListenAddress(absl::string_view listen) {
  absl::string_view host;
  if (!SplitHost(listen, &host) || host.empty()) return false;
  const std::string host_string(host);
  in_addr v4{};
  if (inet_pton(AF_INET, host_string.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host_string.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return absl::AsciiStrToLower(host) == "localhost";
}

bool ConstantTimeEquals(absl::string_view presented, absl::string_view expected) {
  // Walk `presented` in full whatever happens; `expected` is indexed modulo
  // its size so its length does not shape the loop either.
  uint8_t difference = presented.size() == expected.size() ? 0 : 1;
  if (expected.empty()) return false;
  for (size_t i = 0; i < presented.size(); ++i) {
    difference |= static_cast<uint8_t>(presented[i] ^ expected[i % expected.size()]);
  }
  return difference == 0;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFile(path, "--auth_token_file");
  if (!content.ok()) return content.status();
  const absl::string_view token = absl::StripAsciiWhitespace(*content);
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth_token_file '", path, "' holds no token"));
  }
  if (!IsHeaderSafe(token)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth_token_file '", path,
                     "': the token must be printable ASCII without spaces"));
  }
  return std::string(token);
}

grpc::Status BearerTokenProcessor::Process(const InputMetadata& auth_metadata,
                                           grpc::AuthContext* /*context*/,
                                           OutputMetadata* consumed_auth_metadata,
                                           OutputMetadata* /*response_metadata*/) {
  const auto path = auth_metadata.find(":path");
  if (path != auth_metadata.end() &&
      absl::StartsWith(absl::string_view(path->second.data(), path->second.size()),
                       kHealthServicePrefix)) {
    return grpc::Status::OK;
  }
  const auto found = auth_metadata.find("authorization");
  if (found == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing bearer token: this server requires the metadata "
                        "'authorization: Bearer <token>' on every call");
  }
  absl::string_view value(found->second.data(), found->second.size());
  if (!absl::ConsumePrefix(&value, kBearerPrefix) || !ConstantTimeEquals(value, token_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
  }
  consumed_auth_metadata->insert(
      std::make_pair(std::string(found->first.data(), found->first.size()),
                     std::string(found->second.data(), found->second.size())));
  return grpc::Status::OK;
}

std::string ServerSecurity::Describe() const {
  if (!tls) return "plaintext, no token (loopback only)";
  return token ? "TLS, bearer token required" : "TLS, no token (loopback only)";
}

absl::StatusOr<ServerSecurity> MakeServerSecurity(const RemoteAccessOptions& options) {
  const bool loopback = IsLoopbackListenAddress(options.listen);
  const bool has_cert = !options.tls_cert_file.empty();
  const bool has_key = !options.tls_key_file.empty();
  if (has_cert != has_key) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key go together: give both PEM files or neither");
  }
  if (!options.auth_token_file.empty() && !options.auth_token.empty()) {
    return absl::InvalidArgumentError("give --auth_token_file or --auth_token, not both");
  }
  const bool tls = has_cert;
  const bool token = !options.auth_token_file.empty() || !options.auth_token.empty();
  if (!loopback && !(tls && token)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to listen on '", options.listen,
        "': it is not a loopback address, and serving beyond this machine requires TLS and "
        "a bearer token. Add --tls_cert=<cert.pem> --tls_key=<key.pem> "
        "--auth_token_file=<file> (README: \"Remote use (TLS and token)\"), or listen on "
        "127.0.0.1."));
  }
  if (token && !tls) {
    return absl::FailedPreconditionError(
        "a bearer token needs TLS (--tls_cert and --tls_key): sent in plaintext it could be "
        "read on the wire");
  }

  ServerSecurity security;
  if (!tls) {
    security.credentials = grpc::InsecureServerCredentials();
    return security;
  }
  absl::StatusOr<std::string> cert = ReadFile(options.tls_cert_file, "--tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(options.tls_key_file, "--tls_key");
  if (!key.ok()) return key.status();
  if (!absl::StrContains(*cert, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls_cert '", options.tls_cert_file, "' holds no PEM certificate"));
  }
  if (!absl::StrContains(*key, "PRIVATE KEY-----")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key '", options.tls_key_file, "' holds no PEM private key"));
  }
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  security.credentials = grpc::SslServerCredentials(ssl);
  security.tls = true;
  if (token) {
    std::string secret = options.auth_token;
    if (!options.auth_token_file.empty()) {
      absl::StatusOr<std::string> read = ReadTokenFile(options.auth_token_file);
      if (!read.ok()) return read.status();
      secret = *std::move(read);
    } else if (!IsHeaderSafe(secret)) {
      return absl::InvalidArgumentError(
          "--auth_token must be printable ASCII without spaces");
    }
    security.credentials->SetAuthMetadataProcessor(
        std::make_shared<BearerTokenProcessor>(std::move(secret)));
    security.token = true;
  }
  return security;
}

}  // namespace stimloop
