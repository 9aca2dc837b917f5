// stimloop-server: the closed-loop stimulus optimization server.
//
//   stimloop-server --listen=127.0.0.1:50051 --data_dir=./stimloop-data
//
// Prints "stimloop-server listening on HOST:PORT" once it accepts calls
// (with --listen=127.0.0.1:0 the kernel picks a free port). SIGINT or
// SIGTERM shut it down gracefully: in-flight calls finish, then it exits 0.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/session_journal.h"
#include "server/session_manager.h"
#include "server/stimloop_service.h"
#include "server/torch_threads.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to listen on. Loopback by default; port 0 picks a free port.");
ABSL_FLAG(std::string, data_dir, "stimloop-data",
          "Directory for the session store; created if missing.");
ABSL_FLAG(int, torch_threads, 1,
          "LibTorch intra-op threads for refits and image generation; keep it below the "
          "number of cores so RPC threads stay responsive.");
ABSL_FLAG(int, max_open_sessions, 64, "Open sessions allowed at once.");

namespace {

int Run() {
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const int torch_threads = absl::GetFlag(FLAGS_torch_threads);
  if (torch_threads < 1) {
    std::cerr << "stimloop-server: --torch_threads must be >= 1\n";
    return 2;
  }
  stimloop::SetTorchThreads(torch_threads);

  std::error_code error;
  std::filesystem::create_directories(absl::GetFlag(FLAGS_data_dir), error);
  if (error) {
    std::cerr << "stimloop-server: cannot create --data_dir '" << absl::GetFlag(FLAGS_data_dir)
              << "': " << error.message() << "\n";
    return 2;
  }

  stimloop::InMemoryJournal journal;
  stimloop::SessionManager sessions(&journal, absl::GetFlag(FLAGS_max_open_sessions));
  stimloop::StimLoopService service(&sessions);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "stimloop-server: cannot listen on '" << listen << "'\n";
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::cout << "stimloop-server listening on " << host << ":" << port << std::endl;

  // SIGINT/SIGTERM were blocked in main() before any thread started, so only
  // this thread receives them.
  std::thread waiter([&server]() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    int signal = 0;
    sigwait(&signals, &signal);
    std::cout << "stimloop-server: signal " << signal << ", shutting down" << std::endl;
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  });
  server->Wait();
  waiter.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::SetProgramUsageMessage("Closed-loop stimulus optimization server (gRPC).");
  absl::ParseCommandLine(argc, argv);
  return Run();
}
