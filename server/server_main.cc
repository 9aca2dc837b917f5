// stimloop-server: the closed-loop stimulus optimization server.
//
//   stimloop-server --listen=127.0.0.1:50051 --data_dir=./stimloop-data
//
// Prints "stimloop-server listening on HOST:PORT" once it accepts calls
// (with --listen=127.0.0.1:0 the kernel picks a free port). SIGINT or
// SIGTERM shut it down gracefully: in-flight calls finish, then it exits 0.
//
// Sessions are journaled to <data_dir>/stimloop.sqlite (server/session_store.h),
// or, with --store=postgresql://..., to a PostgreSQL database that several
// replicas share (server/pg_session_store.h): each open session is owned by
// one replica through a lease (server/session_leases.h); a request for a
// session another live replica owns gets FAILED_PRECONDITION naming the
// owner's address, and a session whose owner died is taken over by the
// next replica asked for it, restored exactly from the store.
// On start the store is checked and every open session in it is resumed, so
// a server killed at any moment goes on where it was. A store that is corrupt,
// foreign, in use by another server, or lost (missing or empty where
// <data_dir>/stimloop.marker says it existed; --new_store begins a new one)
// is a clear message and exit status 1. A session whose stored rows fail
// their checksums is not resumed: the error names the session and the row,
// and every request naming that session gets it (DATA_LOSS).
//
// Requests name server-side files (reference images, candidate pools,
// TorchScript modules) relative to --assets_dir and cannot leave it
// (server/asset_paths.h).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/work_pool.h"
#include "server/asset_paths.h"
#include "server/session.h"
#include "server/session_journal.h"
#include "server/session_manager.h"
#include "server/session_restore.h"
#include "server/open_store.h"
#include "server/session_leases.h"
#include "server/session_store.h"
#include "server/remote_access_flags.h"
#include "server/stimloop_service.h"
#include "server/torch_threads.h"
#include "server/unparsed_request.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "Address to listen on. Loopback by default; port 0 picks a free port.");
ABSL_FLAG(std::string, data_dir, "stimloop-data",
          "Directory for the session store; created if missing.");
ABSL_FLAG(int, torch_threads, 1,
          "LibTorch intra-op threads (and OpenBLAS's) for refits and image generation; keep "
          "it below the number of cores so RPC threads stay responsive.");
ABSL_FLAG(int, max_open_sessions, 64, "Open sessions allowed at once.");
ABSL_FLAG(int, workers, 0,
          "Background threads shared by every session's refits and proposals, which take "
          "turns on them; 0: one per core.");
ABSL_FLAG(bool, new_store, false,
          "Begin a new, empty session store where <data_dir>/stimloop.marker shows that a "
          "store existed but stimloop.sqlite is missing or empty (lost). Refused when the "
          "store holds data. Without it, a lost store stops the server.");
ABSL_FLAG(std::string, assets_dir, "",
          "The only folder whose files requests may name (reference_images.dir, "
          "optimizer.candidate_pool_dir, surrogate.frontend_path / model_path, "
          "image_space.generator_path), relative to it; empty: <data_dir>/assets.");
ABSL_FLAG(std::string, store_sync, "full",
          "SQLite synchronous mode of the session store: 'full' (every commit fsync'ed: "
          "survives SIGKILL and power loss) or 'normal' (survives SIGKILL; the newest "
          "commits may roll back on power loss).");

ABSL_FLAG(std::string, store, "",
          "The session store: empty for the SQLite store in --data_dir (the default), or a "
          "libpq URI, postgresql://[user[:password]@]host[:port]/dbname[?param=value...], for a "
          "PostgreSQL database that several replicas share.");
ABSL_FLAG(std::string, replica_id, "",
          "With a PostgreSQL --store: this replica's id in session leases; empty: "
          "<hostname>-<pid>-<random>.");
ABSL_FLAG(std::string, advertise_address, "",
          "With a PostgreSQL --store: the address other replicas send clients to for the "
          "sessions this replica owns; empty: the listening address (with its port).");
ABSL_FLAG(int, store_connections, 4,
          "With a PostgreSQL --store: connections to the database; journal writes of "
          "different sessions commit in parallel on them.");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(10),
          "With a PostgreSQL --store: how long a session's lease outlives its owner's last "
          "renewal (renewed every third of it); a dead replica's sessions are taken over "
          "after at most this long.");

namespace {

// Self-pipe for SIGINT/SIGTERM: libraries start threads before main() (e.g.
// OpenBLAS), so signals cannot be confined to one thread by masking them.
int g_signal_pipe[2] = {-1, -1};

void OnSignal(int signal) {
  const int saved_errno = errno;
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &signal, sizeof(signal));
  errno = saved_errno;
}

bool InstallSignalHandlers() {
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) return false;
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  return sigaction(SIGINT, &action, nullptr) == 0 && sigaction(SIGTERM, &action, nullptr) == 0;
}

// Resumes every open session of `store` into `sessions`. A session that
// cannot be rebuilt is reported, logged as an event and left out; the others
// still resume. Returns how many resumed.
int ResumeOpenSessions(stimloop::DurableStore& store, stimloop::SessionManager& sessions,
                       const stimloop::AssetsDir& assets, stimloop::WorkPool* pool) {
  auto ids = store.OpenSessionIds();
  if (!ids.ok()) {
    std::cerr << "stimloop-server: cannot list open sessions: " << ids.status() << "\n";
    return 0;
  }
  int resumed = 0;
  for (const std::string& id : *ids) {
    absl::Status status;
    auto journaled = store.LoadSession(id);
    if (journaled.ok()) {
      auto session = stimloop::Session::Restore(*journaled, &store, assets, pool);
      if (session.ok()) {
        const std::shared_ptr<stimloop::Session> shared = *std::move(session);
        status = sessions.Adopt(shared);
      } else {
        status = session.status();
      }
    } else {
      status = journaled.status();
    }
    if (status.ok()) {
      ++resumed;
      status = store.RecordEvent(id, stimloop::kEventResumed, "", absl::Now());
      if (!status.ok()) {
        std::cerr << "stimloop-server: session " << id << ": " << status << "\n";
      }
    } else {
      std::cerr << "stimloop-server: cannot resume session " << id << ": " << status << "\n";
      store
          .RecordEvent(id, stimloop::kEventError,
                       absl::StrCat("cannot resume: ", status.ToString()), absl::Now())
          .IgnoreError();
    }
  }
  return resumed;
}

// --assets_dir, or <data_dir>/assets; absolute, so that it does not depend
// on the working directory.
std::string AssetsRoot() {
  std::string root = absl::GetFlag(FLAGS_assets_dir);
  if (root.empty()) {
    root = (std::filesystem::path(absl::GetFlag(FLAGS_data_dir)) / "assets").string();
  }
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(root, error);
  return error ? root : absolute.lexically_normal().string();
}

int Run() {
  const std::string listen = absl::GetFlag(FLAGS_listen);
  // Remote access policy (server/remote_access.h): refuse before touching anything.
  auto security = stimloop::ServerSecurityFromFlags(listen);
  if (!security.ok()) {
    std::cerr << "stimloop-server: " << security.status().message() << "\n";
    return 2;
  }
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

  stimloop::StoreOptions store_options;
  const std::string sync = absl::GetFlag(FLAGS_store_sync);
  if (sync == "full") {
    store_options.sync = stimloop::StoreOptions::Sync::kFull;
  } else if (sync == "normal") {
    store_options.sync = stimloop::StoreOptions::Sync::kNormal;
  } else {
    std::cerr << "stimloop-server: --store_sync must be 'full' or 'normal', got '" << sync
              << "'\n";
    return 2;
  }
  store_options.new_store = absl::GetFlag(FLAGS_new_store);
  stimloop::PgStoreOptions pg_options;
  pg_options.replica_id = absl::GetFlag(FLAGS_replica_id);
  pg_options.address = absl::GetFlag(FLAGS_advertise_address);
  pg_options.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  pg_options.connections = absl::GetFlag(FLAGS_store_connections);
  if (pg_options.connections < 1) {
    std::cerr << "stimloop-server: --store_connections must be at least 1\n";
    return 2;
  }
  if (pg_options.lease_ttl < absl::Milliseconds(100)) {
    std::cerr << "stimloop-server: --lease_ttl must be at least 100ms\n";
    return 2;
  }
  const std::string store_flag = absl::GetFlag(FLAGS_store);
  if (!store_flag.empty() && !stimloop::IsPostgresUri(store_flag)) {
    std::cerr << "stimloop-server: --store: expected a PostgreSQL URI "
                 "(postgresql://host:port/dbname) or nothing (the SQLite store in --data_dir)\n";
    return 2;
  }
  auto store = stimloop::OpenDurableStore(store_flag, absl::GetFlag(FLAGS_data_dir),
                                          store_options, pg_options);
  if (!store.ok()) {
    std::cerr << "stimloop-server: cannot open the session store: " << store.status().message()
              << "\n";
    return 1;
  }
  stimloop::SessionLeases* const leases = (*store)->leases();
  const stimloop::AssetsDir assets(AssetsRoot());
  // Every session's refits and background proposals share these threads.
  int workers = absl::GetFlag(FLAGS_workers);
  if (workers <= 0) workers = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  stimloop::WorkPool pool(workers);
  stimloop::SessionManager sessions(store->get(), absl::GetFlag(FLAGS_max_open_sessions), assets,
                                    &pool);
  // With a shared store, open sessions are claimed when a request names
  // them, not all at start: other replicas may own them.
  const int resumed = leases == nullptr ? ResumeOpenSessions(**store, sessions, assets, &pool) : 0;
  // Sessions that were not resumed (closed ones, and with a shared store
  // every one) are read from the store the first time a request names
  // them, so they stay inspectable over gRPC. With a shared store, an open
  // one's lease is claimed first (the owner's address if another replica
  // holds it), then it is read: the newest state.
  sessions.SetLoader([store = store->get(), leases, &assets, &pool](const std::string& id)
                         -> absl::StatusOr<std::shared_ptr<stimloop::Session>> {
    if (leases != nullptr) {
      auto claimed = leases->Claim(id);
      if (!claimed.ok()) return claimed.status();
      if (*claimed == stimloop::SessionLeases::Claimed::kTakenOver) {
        std::cout << "stimloop-server: took over session " << id << std::endl;
      }
    }
    auto journaled = store->LoadSession(id);
    if (!journaled.ok()) return journaled.status();
    auto session = stimloop::Session::Restore(*journaled, store, assets, &pool);
    if (!session.ok()) return session.status();
    return std::shared_ptr<stimloop::Session>(*std::move(session));
  });
  stimloop::ReadOnlyJournal read_only;
  if (leases != nullptr) {
    sessions.SetLeases(leases);
    // ListSessions names every session in the store; those other replicas
    // own are described from a read-only copy.
    sessions.SetCatalog([store = store->get()]() { return store->AllSessionIds(); },
                        [store = store->get(), &read_only, &assets](const std::string& id)
                            -> absl::StatusOr<std::shared_ptr<stimloop::Session>> {
                          auto journaled = store->LoadSession(id);
                          if (!journaled.ok()) return journaled.status();
                          auto session = stimloop::Session::Restore(*journaled, &read_only, assets);
                          if (!session.ok()) return session.status();
                          return std::shared_ptr<stimloop::Session>(*std::move(session));
                        });
  }
  std::cout << "stimloop-server: session store " << (*store)->Describe() << ", resumed " << resumed
            << " open session(s); assets folder " << assets.root() << "; " << pool.threads()
            << " background worker(s)" << std::endl;
  stimloop::StimLoopService service(&sessions);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, security->credentials, &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  // INVALID_ARGUMENT instead of an empty INTERNAL for a request that does
  // not parse (server/unparsed_request.h).
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(stimloop::MakeUnparsedRequestInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "stimloop-server: cannot listen on '" << listen << "'\n";
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::cout << "stimloop-server: " << security->Describe() << std::endl;
  // Renews this replica's leases every third of their time to live; a
  // session whose lease was lost (taken over after it expired) is dropped
  // from memory.
  absl::Notification stop_renewing;
  std::thread renewer;
  if (leases != nullptr) {
    const std::string advertised = absl::GetFlag(FLAGS_advertise_address);
    leases->SetAddress(advertised.empty() ? absl::StrCat(host, ":", port) : advertised);
    std::cout << "stimloop-server: replica " << leases->replica_id() << ", lease time to live "
              << absl::FormatDuration(leases->ttl()) << std::endl;
    renewer = std::thread([leases, &sessions, &stop_renewing]() {
      while (!stop_renewing.WaitForNotificationWithTimeout(leases->ttl() / 3)) {
        auto lost = leases->Renew();
        if (!lost.ok()) {
          std::cerr << "stimloop-server: cannot renew session leases: " << lost.status() << "\n";
          continue;
        }
        for (const std::string& id : *lost) {
          std::cerr << "stimloop-server: lost the lease of session " << id
                    << " (taken over by another replica)\n";
          sessions.Evict(id);
        }
      }
    });
  }
  std::cout << "stimloop-server listening on " << host << ":" << port << std::endl;

  // The signal handler only writes the signal number to a pipe; this thread
  // does the shutdown outside signal context.
  std::thread waiter([&server]() {
    int signal = 0;
    while (read(g_signal_pipe[0], &signal, sizeof(signal)) < 0 && errno == EINTR) {
    }
    std::cout << "stimloop-server: signal " << signal << ", shutting down" << std::endl;
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  waiter.join();
  if (leases != nullptr) {
    stop_renewing.Notify();
    renewer.join();
    // Other replicas may take this one's sessions over at once.
    if (absl::Status s = leases->ReleaseAll(); !s.ok()) {
      std::cerr << "stimloop-server: cannot release session leases: " << s << "\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (!InstallSignalHandlers()) {
    std::cerr << "stimloop-server: cannot install signal handlers\n";
    return 1;
  }
  absl::SetProgramUsageMessage("Closed-loop stimulus optimization server (gRPC).");
  absl::ParseCommandLine(argc, argv);
  return Run();
}
