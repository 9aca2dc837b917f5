// The remote access policy: which addresses are loopback, the token check,
// and which flag combinations the server refuses.
#include "server/remote_access.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

TEST(IsLoopbackListenAddressTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackListenAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("127.0.0.1:0"));
  EXPECT_TRUE(IsLoopbackListenAddress("127.255.3.4:1"));
  EXPECT_TRUE(IsLoopbackListenAddress("[::1]:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("[0:0:0:0:0:0:0:1]:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("[::ffff:127.0.0.1]:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("localhost:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("LocalHost:50051"));
}

TEST(IsLoopbackListenAddressTest, WildcardsHostnamesAndOtherAddressesAreRemote) {
  EXPECT_FALSE(IsLoopbackListenAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("192.168.1.10:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("128.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("[fe80::1]:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("[::ffff:10.0.0.1]:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("rig-server.lab.example:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("localhost.evil.example:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("127.0.0.1.nip.io:50051"));
}

TEST(IsLoopbackListenAddressTest, MalformedAddressesAreRemote) {
  EXPECT_FALSE(IsLoopbackListenAddress(""));
  EXPECT_FALSE(IsLoopbackListenAddress("127.0.0.1"));       // no port
  EXPECT_FALSE(IsLoopbackListenAddress(":50051"));          // no host
  EXPECT_FALSE(IsLoopbackListenAddress("::1:50051"));       // IPv6 without brackets
  EXPECT_FALSE(IsLoopbackListenAddress("[::1]"));           // no port
  EXPECT_FALSE(IsLoopbackListenAddress("[::1:50051"));      // unclosed bracket
  EXPECT_FALSE(IsLoopbackListenAddress("127.1:50051"));     // not dotted-quad
  EXPECT_FALSE(IsLoopbackListenAddress("unix:/tmp/s.sock"));
}

TEST(ConstantTimeEqualsTest, EqualOnlyForIdenticalStrings) {
  EXPECT_TRUE(ConstantTimeEquals("s3cret-token", "s3cret-token"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret-tokeN", "s3cret-token"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret", "s3cret-token"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret-token-and-more", "s3cret-token"));
  // A repetition of the secret must not pass through the modulo indexing.
  EXPECT_FALSE(ConstantTimeEquals("abcabc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", ""));  // no secret never matches
}

class BearerTokenProcessorTest : public ::testing::Test {
 protected:
  grpc::Status Check(const grpc::AuthMetadataProcessor::InputMetadata& metadata) {
    consumed_.clear();
    grpc::AuthMetadataProcessor::OutputMetadata response;
    return processor_.Process(metadata, nullptr, &consumed_, &response);
  }

  BearerTokenProcessor processor_{"right-token"};
  grpc::AuthMetadataProcessor::OutputMetadata consumed_;
};

TEST_F(BearerTokenProcessorTest, RightTokenPassesAndIsConsumed) {
  const grpc::Status status = Check({{":path", "/stimloop.v1.StimLoop/CreateSession"},
                                     {"authorization", "Bearer right-token"}});
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(consumed_.count("authorization"), 1u);
}

TEST_F(BearerTokenProcessorTest, MissingTokenIsUnauthenticated) {
  const grpc::Status status = Check({{":path", "/stimloop.v1.StimLoop/CreateSession"}});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("missing bearer token"));
}

TEST_F(BearerTokenProcessorTest, WrongOrMalformedTokenIsUnauthenticated) {
  for (const char* value : {"Bearer wrong-token", "Bearer right-token2", "Bearer ",
                            "right-token", "Basic right-token", "bearer right-token"}) {
    const grpc::Status status =
        Check({{":path", "/stimloop.v1.StimLoop/NextStimuli"}, {"authorization", value}});
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << value;
    EXPECT_THAT(status.error_message(), HasSubstr("invalid bearer token")) << value;
  }
}

TEST_F(BearerTokenProcessorTest, ReflectionNeedsTheTokenHealthDoesNot) {
  EXPECT_EQ(Check({{":path", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}})
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Check({{":path", "/grpc.health.v1.Health/Check"}}).ok());
  EXPECT_TRUE(Check({{":path", "/grpc.health.v1.Health/Watch"}}).ok());
  // Only the exact service prefix is open.
  EXPECT_EQ(Check({{":path", "/grpc.health.v1.HealthX/Check"}}).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// A scratch directory with files for the flag tests; removed afterwards.
class MakeServerSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("stimloop-remote-access-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // Not a real key pair: credentials are only parsed when a server starts.
    cert_ = Write("cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    key_ = Write("key.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
    token_ = Write("token", "  tok-123\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }

  RemoteAccessOptions Options(const std::string& listen, bool tls, bool token) const {
    RemoteAccessOptions options;
    options.listen = listen;
    if (tls) {
      options.tls_cert_file = cert_;
      options.tls_key_file = key_;
    }
    if (token) options.auth_token_file = token_;
    return options;
  }

  std::filesystem::path dir_;
  std::string cert_, key_, token_;
};

TEST_F(MakeServerSecurityTest, LoopbackRunsPlaintextByDefault) {
  auto security = MakeServerSecurity(Options("127.0.0.1:0", false, false));
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_FALSE(security->tls);
  EXPECT_FALSE(security->token);
  EXPECT_NE(security->credentials, nullptr);
}

TEST_F(MakeServerSecurityTest, RemoteWithoutTlsAndTokenIsRefused) {
  for (const auto& [tls, token] :
       {std::pair{false, false}, std::pair{true, false}, std::pair{false, true}}) {
    auto security = MakeServerSecurity(Options("0.0.0.0:50051", tls, token));
    ASSERT_FALSE(security.ok()) << tls << token;
    EXPECT_EQ(security.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(security.status().message(), HasSubstr("refusing to listen on '0.0.0.0:50051'"));
    EXPECT_THAT(security.status().message(), HasSubstr("--tls_cert"));
  }
}

TEST_F(MakeServerSecurityTest, RemoteWithTlsAndTokenIsAccepted) {
  for (const char* listen : {"0.0.0.0:50051", "[::]:0", "rig.lab.example:50051"}) {
    auto security = MakeServerSecurity(Options(listen, true, true));
    ASSERT_TRUE(security.ok()) << listen << ": " << security.status();
    EXPECT_TRUE(security->tls);
    EXPECT_TRUE(security->token);
  }
}

TEST_F(MakeServerSecurityTest, TokenWithoutTlsIsRefusedEvenOnLoopback) {
  auto security = MakeServerSecurity(Options("127.0.0.1:0", false, true));
  ASSERT_FALSE(security.ok());
  EXPECT_THAT(security.status().message(), HasSubstr("needs TLS"));
}

TEST_F(MakeServerSecurityTest, LoopbackMayUseTlsWithOrWithoutToken) {
  auto tls_only = MakeServerSecurity(Options("127.0.0.1:0", true, false));
  ASSERT_TRUE(tls_only.ok()) << tls_only.status();
  EXPECT_TRUE(tls_only->tls);
  EXPECT_FALSE(tls_only->token);
  auto both = MakeServerSecurity(Options("localhost:0", true, true));
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_TRUE(both->token);
}

TEST_F(MakeServerSecurityTest, BadFlagCombinationsAndFilesAreInvalid) {
  RemoteAccessOptions cert_only = Options("127.0.0.1:0", true, false);
  cert_only.tls_key_file.clear();
  EXPECT_THAT(MakeServerSecurity(cert_only).status().message(), HasSubstr("go together"));

  RemoteAccessOptions both_tokens = Options("127.0.0.1:0", true, true);
  both_tokens.auth_token = "x";
  EXPECT_THAT(MakeServerSecurity(both_tokens).status().message(), HasSubstr("not both"));

  RemoteAccessOptions missing = Options("127.0.0.1:0", true, true);
  missing.tls_cert_file = (dir_ / "absent.pem").string();
  EXPECT_THAT(MakeServerSecurity(missing).status().message(), HasSubstr("cannot read --tls_cert"));

  RemoteAccessOptions not_pem = Options("127.0.0.1:0", true, true);
  not_pem.tls_key_file = token_;
  EXPECT_THAT(MakeServerSecurity(not_pem).status().message(), HasSubstr("no PEM private key"));

  RemoteAccessOptions empty_token = Options("127.0.0.1:0", true, true);
  empty_token.auth_token_file = Write("empty", " \n");
  EXPECT_THAT(MakeServerSecurity(empty_token).status().message(), HasSubstr("holds no token"));
}

TEST_F(MakeServerSecurityTest, TokenFileIsTrimmedAndMustBeHeaderSafe) {
  auto token = ReadTokenFile(token_);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "tok-123");
  EXPECT_FALSE(ReadTokenFile(Write("spaced", "two words\n")).ok());
  EXPECT_FALSE(ReadTokenFile(Write("binary", std::string("a\x01z", 3))).ok());
  EXPECT_FALSE(ReadTokenFile((dir_ / "absent").string()).ok());
}

}  // namespace
}  // namespace stimloop
