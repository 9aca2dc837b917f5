// A stimloop-server binary started once per test suite on a free loopback
// port, with a fresh data directory, and a client connected to it.
#ifndef STIMLOOP_TESTS_INTEGRATION_TEST_SERVER_H_
#define STIMLOOP_TESTS_INTEGRATION_TEST_SERVER_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "clients/rig_client.h"
#include "clients/server_process.h"

namespace stimloop {

// A fresh, empty directory under the system temp dir.
inline std::string FreshTempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("stimloop-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Starts the server with `extra_args`; fails the test on error.
inline std::unique_ptr<ServerProcess> StartTestServer(
    const std::string& name, const std::vector<std::string>& extra_args = {}) {
  const std::string dir = FreshTempDir(name);
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/server.log",
                                     extra_args);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

inline std::unique_ptr<RigClient> ConnectTo(const ServerProcess& server) {
  RigClientOptions options;
  options.address = server.address();
  auto client = RigClient::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// A small valid config: 32x32 gray, one neuron, genetic in spectral space.
inline v1::SessionConfig SmallConfig(uint64_t seed = 1) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(32);
  config.mutable_image()->set_width(32);
  config.mutable_image()->set_channels(1);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(10);
  config.set_seed(seed);
  return config;
}

}  // namespace stimloop

#endif  // STIMLOOP_TESTS_INTEGRATION_TEST_SERVER_H_
