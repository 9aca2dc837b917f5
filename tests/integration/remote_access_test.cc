// The real server binary with TLS and a bearer token: certificates are made
// at test time with the openssl command line (never committed), the server
// listens on 127.0.0.1 with them, and clients with and without the token,
// and without TLS, talk to it. Also: a non-loopback address without TLS and
// a token makes the server refuse to start.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "clients/rig_client.h"
#include "clients/server_process.h"
#include "health.grpc.pb.h"
#include "tests/integration/test_server.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

constexpr char kToken[] = "test-token-5d41402abc4b2a76b9719d911017c592";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Runs `command` (output appended to `log`); an error with the log on failure.
absl::Status Run(const std::string& command, const std::string& log) {
  const int status = std::system((command + " >>" + log + " 2>&1").c_str());
  if (status != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` failed (", status, "):\n",
                                            ReadAll(log)));
  }
  return absl::OkStatus();
}

// A throwaway PKI in `dir`: a self-signed CA and a server certificate it
// signed for IP 127.0.0.1 and DNS localhost, plus a token file.
struct TestPki {
  std::string ca_cert;      // path of the CA certificate (PEM)
  std::string server_cert;  // path of the server certificate (PEM)
  std::string server_key;   // path of the server key (PEM)
  std::string token_file;   // path of a file holding kToken
};

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir) {
  const std::string config = dir + "/openssl.cnf";
  std::ofstream(config) << "[req]\n"
                           "distinguished_name = dn\n"
                           "prompt = no\n"
                           "[dn]\n"
                           "CN = stimloop test\n"
                           "[ca_ext]\n"
                           "basicConstraints = critical,CA:TRUE\n"
                           "keyUsage = critical,keyCertSign,cRLSign\n"
                           "subjectKeyIdentifier = hash\n"
                           "[server_ext]\n"
                           "basicConstraints = CA:FALSE\n"
                           "keyUsage = critical,digitalSignature,keyEncipherment\n"
                           "extendedKeyUsage = serverAuth\n"
                           "subjectAltName = IP:127.0.0.1,DNS:localhost\n";
  TestPki pki{dir + "/ca.pem", dir + "/server.pem", dir + "/server.key", dir + "/token"};
  const std::string log = dir + "/openssl.log";
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  for (const std::string& command : {
           absl::StrCat("openssl req -x509 -config ", config, " -extensions ca_ext ", ec,
                        " -keyout ", dir, "/ca.key -out ", pki.ca_cert, " -days 2"),
           absl::StrCat("openssl req -new -config ", config, " ", ec, " -keyout ",
                        pki.server_key, " -out ", dir, "/server.csr"),
           absl::StrCat("openssl x509 -req -in ", dir, "/server.csr -CA ", pki.ca_cert,
                        " -CAkey ", dir, "/ca.key -set_serial 1 -days 2 -extfile ", config,
                        " -extensions server_ext -out ", pki.server_cert),
       }) {
    if (absl::Status status = Run(command, log); !status.ok()) return status;
  }
  std::ofstream(pki.token_file) << kToken << "\n";
  return pki;
}

// A server on 127.0.0.1 with TLS and kToken, started fresh for each test.
class RemoteAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTempDir("remote-access");
    auto pki = MakeTestPki(dir_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    server_ = StartTestServer("remote-access-server",
                              {"--tls_cert=" + pki_.server_cert, "--tls_key=" + pki_.server_key,
                               "--auth_token_file=" + pki_.token_file});
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    server_.reset();  // Stops the server before its files go.
    std::filesystem::remove_all(dir_);
  }

  // A TLS client trusting the test CA, sending `token` (none when empty).
  std::unique_ptr<RigClient> TlsClient(const std::string& token) {
    RigClientOptions options;
    options.address = server_->address();
    options.tls_root_cert_pem = ReadAll(pki_.ca_cert);
    options.auth_token = token;
    auto client = RigClient::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::string dir_;
  TestPki pki_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(RemoteAccessTest, TlsClientWithTheRightTokenRunsAGeneration) {
  auto client = TlsClient(kToken);
  ASSERT_NE(client, nullptr);
  auto session = client->CreateSession(SmallConfig(7));
  ASSERT_TRUE(session.ok()) << session.status();
  auto batch = client->NextStimuli(session->id(), 0);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->stimuli_size(), 10);
  std::vector<v1::Response> responses;
  for (int i = 0; i < batch->stimuli_size(); ++i) {
    v1::Response& response = responses.emplace_back();
    response.set_stimulus_id(batch->stimuli(i).id());
    response.add_rates(1.0 + i);
  }
  auto ack = client->ReportResponses(session->id(), "tls-round-1", responses);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->accepted(), 10);
  EXPECT_EQ(ack->counts().responses(), 10);
}

TEST_F(RemoteAccessTest, NoTokenIsUnauthenticated) {
  auto client = TlsClient("");
  ASSERT_NE(client, nullptr);
  auto session = client->CreateSession(SmallConfig());
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), absl::StatusCode::kUnauthenticated) << session.status();
  EXPECT_THAT(session.status().message(), HasSubstr("missing bearer token"));
  EXPECT_EQ(client->ListSessions().status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(RemoteAccessTest, WrongTokenIsUnauthenticated) {
  for (const std::string& token : {std::string("wrong"), std::string(kToken) + "x",
                                   std::string(kToken).substr(1)}) {
    auto client = TlsClient(token);
    ASSERT_NE(client, nullptr);
    auto session = client->CreateSession(SmallConfig());
    ASSERT_FALSE(session.ok()) << token;
    EXPECT_EQ(session.status().code(), absl::StatusCode::kUnauthenticated) << session.status();
    EXPECT_THAT(session.status().message(), HasSubstr("invalid bearer token"));
  }
  // Nothing was created by the refused calls.
  auto client = TlsClient(kToken);
  ASSERT_NE(client, nullptr);
  auto list = client->ListSessions();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->sessions_size(), 0);
}

TEST_F(RemoteAccessTest, PlaintextClientCannotTalkToIt) {
  auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::StimLoop::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  context.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  v1::CreateSessionRequest request;
  *request.mutable_config() = SmallConfig();
  v1::Session reply;
  const grpc::Status status = stub->CreateSession(&context, request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();

  auto client = TlsClient(kToken);
  ASSERT_NE(client, nullptr);
  auto list = client->ListSessions();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->sessions_size(), 0);
}

TEST_F(RemoteAccessTest, HealthStaysOpenWithoutToken) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadAll(pki_.ca_cert);
  auto channel = grpc::CreateChannel(server_->address(), grpc::SslCredentials(ssl));
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health->Check(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(RemoteAccessTest, WildcardAddressStartsWithTlsAndToken) {
  const std::string dir = FreshTempDir("remote-access-wildcard");
  auto remote = ServerProcess::Start(
      DefaultServerBinary(), dir + "/data", dir + "/server.log",
      {"--listen=0.0.0.0:0", "--tls_cert=" + pki_.server_cert, "--tls_key=" + pki_.server_key,
       "--auth_token_file=" + pki_.token_file});
  ASSERT_TRUE(remote.ok()) << remote.status();
  const std::string port = (*remote)->address().substr((*remote)->address().rfind(':') + 1);
  RigClientOptions options;
  options.address = "127.0.0.1:" + port;  // the certificate's subjectAltName
  options.tls_root_cert_pem = ReadAll(pki_.ca_cert);
  options.auth_token = kToken;
  auto client = RigClient::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  auto session = (*client)->CreateSession(SmallConfig());
  EXPECT_TRUE(session.ok()) << session.status();
  client->reset();  // Disconnect first, so the server's graceful stop is quick.
  remote->reset();
  std::filesystem::remove_all(dir);
}

// `start` is ServerProcess::Start's error for a server that exited on its
// own before listening, with a non-zero wait status.
void ExpectExitedWithError(const absl::Status& start) {
  EXPECT_THAT(start.message(), HasSubstr("exited before listening (status "));
  EXPECT_THAT(start.message(), ::testing::Not(HasSubstr("(status 0)")));
}

// Refusals need no certificates: the server must stop before listening.
TEST(RemoteAccessRefusalTest, NonLoopbackWithoutTlsAndTokenRefusesToStart) {
  const std::string dir = FreshTempDir("remote-access-refusal");
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/server.log",
                                     {"--listen=0.0.0.0:0"});
  ASSERT_FALSE(server.ok()) << "the server listened on 0.0.0.0 without TLS and a token";
  ExpectExitedWithError(server.status());
  // The log is read after the server was reaped: it holds all it wrote.
  const std::string log = ReadAll(dir + "/server.log");
  EXPECT_THAT(log, HasSubstr("refusing to listen on '0.0.0.0:0'"));
  EXPECT_THAT(log, HasSubstr("requires TLS and a bearer token"));
  EXPECT_THAT(log, HasSubstr("--auth_token_file"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/data")) << "refused, yet touched --data_dir";
  std::filesystem::remove_all(dir);
}

TEST(RemoteAccessRefusalTest, TokenWithoutTlsRefusesToStartOnLoopbackToo) {
  const std::string dir = FreshTempDir("remote-access-refusal-token");
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/server.log",
                                     {"--auth_token=abc"});
  ASSERT_FALSE(server.ok()) << "the server accepted a bearer token over plaintext";
  ExpectExitedWithError(server.status());
  EXPECT_THAT(ReadAll(dir + "/server.log"), HasSubstr("a bearer token needs TLS"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stimloop
