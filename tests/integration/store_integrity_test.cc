// The session store under the real server: sixteen sessions writing at once
// lose and mix nothing, also across a SIGKILL; a corrupt, foreign or
// non-SQLite file in the data directory makes the server exit non-zero with
// a clear message and leaves the file as it was, and so does a lost store
// (missing or 0 bytes) unless --new_store asks for a new one; a stored PNG,
// optimizer state or checkpoint damaged while the database stays valid is
// DATA_LOSS naming the session and the row on resume, never served; the
// server writes nothing outside its data directory; a session closed before
// a restart is still served (read from the store on demand).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "server/session_store.h"
#include "tests/integration/test_server.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Exit {
  int code = -1;  // exit status, or 128 + signal
  std::string output;
};

// Runs the server binary on `data_dir` to its end (it is expected to refuse
// to start); a hung server is killed by SIGALRM after 60 s.
Exit RunServer(const std::string& data_dir, const std::string& log) {
  const std::string binary = DefaultServerBinary();
  const std::string data_flag = "--data_dir=" + data_dir;
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    alarm(60);  // survives exec: bounds the run without a sleep here
    execl(binary.c_str(), binary.c_str(), "--listen=127.0.0.1:0", data_flag.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  Exit out;
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid) {
    out.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  out.output = ReadBytes(log);
  return out;
}

// A data directory holding a store with one session, written by the real
// server and stopped gracefully (the WAL is folded into the main file).
std::string DirWithStore(const std::string& name) {
  const std::string dir = FreshTempDir(name);
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/first.log");
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return dir;
  auto client = ConnectTo(**server);
  if (client != nullptr) {
    auto session = client->CreateSession(SmallConfig());
    EXPECT_TRUE(session.ok()) << session.status();
    if (session.ok()) EXPECT_TRUE(client->NextStimuli(session->id(), 0).ok());
  }
  auto stopped = (*server)->Stop();
  EXPECT_TRUE(stopped.ok() && *stopped == 0);
  return dir;
}

TEST(StoreIntegrityTest, CorruptStoreIsAClearErrorAndNonZeroExit) {
  const std::string dir = DirWithStore("corrupt");
  const std::string path = dir + "/data/stimloop.sqlite";
  std::string bytes = ReadBytes(path);
  ASSERT_GT(bytes.size(), 4u * 4096);
  for (size_t p = 1; p * 4096 < bytes.size(); ++p) {  // every page's header but the first
    for (size_t i = 0; i < 64; ++i) bytes[p * 4096 + i] = static_cast<char>(0x5A ^ i);
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;

  const Exit exit = RunServer(dir + "/data", dir + "/corrupt.log");
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_THAT(exit.output, HasSubstr("is corrupt"));
  EXPECT_THAT(exit.output, HasSubstr(path));
  EXPECT_THAT(exit.output, Not(HasSubstr("listening")));
  EXPECT_EQ(ReadBytes(path), bytes) << "the server must not touch a corrupt store";
}

TEST(StoreIntegrityTest, ForeignSqliteFileIsAClearErrorAndLeftAlone) {
  const std::string dir = FreshTempDir("foreign");
  std::filesystem::create_directories(dir + "/data");
  const std::string path = dir + "/data/stimloop.sqlite";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE inventory (item TEXT); INSERT INTO inventory "
                             "VALUES ('pipettes')", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const std::string before = ReadBytes(path);

  const Exit exit = RunServer(dir + "/data", dir + "/foreign.log");
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_THAT(exit.output, HasSubstr("another application"));
  EXPECT_THAT(exit.output, HasSubstr("not a stimloop store"));
  EXPECT_EQ(ReadBytes(path), before);
}

TEST(StoreIntegrityTest, NonSqliteFileIsAClearError) {
  const std::string dir = FreshTempDir("not-sqlite");
  std::filesystem::create_directories(dir + "/data");
  const std::string text = "these are my notes, not a database\n";
  std::ofstream(dir + "/data/stimloop.sqlite") << text;
  const Exit exit = RunServer(dir + "/data", dir + "/garbage.log");
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_THAT(exit.output, HasSubstr("not a SQLite database"));
  EXPECT_EQ(ReadBytes(dir + "/data/stimloop.sqlite"), text);
}

TEST(StoreIntegrityTest, SixteenSessionsAtOnceLoseAndMixNothingAcrossAKill) {
  constexpr int kSessions = 16;
  constexpr int kGenerations = 4;
  const std::string dir = FreshTempDir("sixteen");
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/a.log");
  ASSERT_TRUE(server.ok()) << server.status();

  // Each session reports one constant rate of its own, so any response
  // filed under another session would show in that session's numbers.
  std::vector<std::string> ids(kSessions);
  std::vector<std::vector<std::string>> pngs(kSessions);
  std::vector<int64_t> acknowledged(kSessions, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      auto client = ConnectTo(**server);
      if (client == nullptr) return;
      auto session = client->CreateSession(SmallConfig(100 + i));
      EXPECT_TRUE(session.ok()) << session.status();
      if (!session.ok()) return;
      ids[i] = session->id();
      for (int g = 0; g < kGenerations; ++g) {
        for (int half = 0; half < 2; ++half) {
          auto batch = client->NextStimuli(ids[i], 5);
          EXPECT_TRUE(batch.ok()) << batch.status();
          if (!batch.ok()) return;
          std::vector<v1::Response> responses;
          for (const auto& s : batch->stimuli()) {
            pngs[i].push_back(s.png());
            v1::Response r;
            r.set_stimulus_id(s.id());
            r.add_rates(i + 1.0);
            responses.push_back(r);
          }
          auto ack = client->ReportResponses(
              ids[i], "g" + std::to_string(g) + "h" + std::to_string(half), responses);
          EXPECT_TRUE(ack.ok()) << ack.status();
          if (ack.ok()) acknowledged[i] = ack->counts().responses();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_FALSE(HasFailure());

  (*server)->Kill();
  server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/b.log");
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = ConnectTo(**server);
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < kSessions; ++i) {
    auto session = client->GetSession(ids[i]);
    ASSERT_TRUE(session.ok()) << session.status();
    EXPECT_EQ(acknowledged[i], kGenerations * 10);
    EXPECT_EQ(session->counts().responses(), acknowledged[i]) << ids[i];
    EXPECT_EQ(session->counts().stimuli(), kGenerations * 10) << ids[i];
    EXPECT_EQ(session->counts().pending(), 0) << ids[i];
    EXPECT_DOUBLE_EQ(session->best_measured().mean_objective(), i + 1.0) << ids[i];
  }
  auto stopped = (*server)->Stop();
  ASSERT_TRUE(stopped.ok() && *stopped == 0);

  // Row by row: every stimulus and response is filed under its own session.
  auto store = SessionStore::Open(dir + "/data");
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < kSessions; ++i) {
    auto journaled = (*store)->LoadSession(ids[i]);
    ASSERT_TRUE(journaled.ok()) << journaled.status();
    ASSERT_EQ(journaled->stimuli.size(), pngs[i].size());
    for (size_t k = 0; k < pngs[i].size(); ++k) {
      EXPECT_EQ(journaled->stimuli[k].entry.png, pngs[i][k]) << ids[i] << " stimulus " << k;
    }
    ASSERT_EQ(journaled->responses.size(), pngs[i].size());
    for (const ResponseEntry& r : journaled->responses) {
      EXPECT_EQ(r.stimulus_id.rfind(ids[i] + "-", 0), 0u) << r.stimulus_id;
      EXPECT_EQ(r.rates, std::vector<double>{i + 1.0}) << r.stimulus_id;
    }
    EXPECT_EQ(journaled->acks.size(), static_cast<size_t>(2 * kGenerations));
  }

  // Nothing was written next to the data directory but the logs; inside it
  // only the store's own files.
  std::set<std::string> outside, inside;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    outside.insert(e.path().filename().string());
  }
  for (const auto& e : std::filesystem::directory_iterator(dir + "/data")) {
    inside.insert(e.path().filename().string());
  }
  EXPECT_EQ(outside, (std::set<std::string>{"a.log", "b.log", "data"}));
  for (const std::string& name : inside) {
    EXPECT_TRUE(name.rfind("stimloop.", 0) == 0) << "unexpected file in data_dir: " << name;
  }
}

TEST(StoreIntegrityTest, ClosedSessionIsStillServedAfterARestart) {
  const std::string dir = FreshTempDir("closed-restart");
  std::string id;
  v1::Session before;
  {
    auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/first.log");
    ASSERT_TRUE(server.ok()) << server.status();
    auto client = ConnectTo(**server);
    ASSERT_NE(client, nullptr);
    auto session = client->CreateSession(SmallConfig(9));
    ASSERT_TRUE(session.ok()) << session.status();
    id = session->id();
    auto batch = client->NextStimuli(id, 0);
    ASSERT_TRUE(batch.ok()) << batch.status();
    std::vector<v1::Response> responses;
    for (const v1::Stimulus& s : batch->stimuli()) {
      v1::Response r;
      r.set_stimulus_id(s.id());
      r.add_rates(static_cast<double>(s.png().size() % 17));
      responses.push_back(std::move(r));
    }
    ASSERT_TRUE(client->ReportResponses(id, "r1", responses).ok());
    auto closed = client->CloseSession(id);
    ASSERT_TRUE(closed.ok()) << closed.status();
    before = *closed;
    auto stopped = (*server)->Stop();
    ASSERT_TRUE(stopped.ok() && *stopped == 0);
  }
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/second.log");
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = ConnectTo(**server);
  ASSERT_NE(client, nullptr);
  // Not resumed (it is closed), read from the store when asked for.
  auto after = client->GetSession(id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->status(), v1::SESSION_STATUS_CLOSED);
  EXPECT_EQ(after->counts().SerializeAsString(), before.counts().SerializeAsString());
  EXPECT_EQ(after->best_measured().stimulus().id(), before.best_measured().stimulus().id());
  // Still closed: reports are refused; unknown ids are still NOT_FOUND.
  std::vector<v1::Response> late(1);
  late[0].set_stimulus_id(id + "-1");
  late[0].add_rates(1.0);
  EXPECT_EQ(client->ReportResponses(id, "r2", late).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto missing = client->GetSession("no-such-session");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no-such-session"));
  auto stopped = (*server)->Stop();
  EXPECT_TRUE(stopped.ok() && *stopped == 0);
}

TEST(StoreIntegrityTest, LostStoreStopsTheServerUntilANewStoreIsAskedFor) {
  const std::string dir = DirWithStore("lost");
  const std::string path = dir + "/data/stimloop.sqlite";
  std::ofstream(path, std::ios::trunc).close();  // the file lost its contents
  Exit exit = RunServer(dir + "/data", dir + "/empty.log");
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_THAT(exit.output, HasSubstr("'" + path + "' is empty (0 bytes)"));
  EXPECT_THAT(exit.output, HasSubstr("stimloop.marker"));
  EXPECT_THAT(exit.output, HasSubstr("--new_store"));
  EXPECT_THAT(exit.output, Not(HasSubstr("listening")));
  EXPECT_EQ(ReadBytes(path), "") << "the server must leave the evidence as it is";

  std::filesystem::remove(path);
  exit = RunServer(dir + "/data", dir + "/missing.log");
  EXPECT_EQ(exit.code, 1) << exit.output;
  EXPECT_THAT(exit.output, HasSubstr("'" + path + "' is missing"));
  EXPECT_THAT(exit.output, HasSubstr("--new_store"));
  EXPECT_FALSE(std::filesystem::exists(path));

  // The operator asks for a new store: the server starts on an empty one,
  // which from then on is the directory's store.
  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/new.log",
                                     {"--new_store"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = ConnectTo(**server);
  ASSERT_NE(client, nullptr);
  auto listed = client->ListSessions();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->sessions_size(), 0);
  auto created = client->CreateSession(SmallConfig());
  ASSERT_TRUE(created.ok()) << created.status();
  auto stopped = (*server)->Stop();
  ASSERT_TRUE(stopped.ok() && *stopped == 0);
  server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/again.log");
  ASSERT_TRUE(server.ok()) << server.status();
  client = ConnectTo(**server);
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->GetSession(created->id()).ok());
}

TEST(StoreIntegrityTest, NewStoreNeverReplacesAStoreThatHoldsSessions) {
  const std::string dir = DirWithStore("new-store-refused");
  const std::string path = dir + "/data/stimloop.sqlite";
  const std::string before = ReadBytes(path);
  const std::string binary = DefaultServerBinary();
  const std::string log = dir + "/refused.log";
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    alarm(60);
    execl(binary.c_str(), binary.c_str(), "--listen=127.0.0.1:0",
          ("--data_dir=" + dir + "/data").c_str(), "--new_store", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << ReadBytes(log);
  EXPECT_THAT(ReadBytes(log), HasSubstr("--new_store: '" + path + "' already holds"));
  EXPECT_EQ(ReadBytes(path), before);
}

// A session with a stored PNG, optimizer state or checkpoint damaged (one
// byte, the database still valid) while the server was down.
struct Damage {
  const char* name;
  v1::SessionConfig (*config)();
  const char* table;
  const char* column;
  const char* where;        // SQL, with ? for the session id
  const char* error_words;  // after "session '<id>' "
};

// Names the case in test listings (instead of its bytes).
void PrintTo(const Damage& damage, std::ostream* os) { *os << damage.name; }

v1::SessionConfig GeneticConfig() { return SmallConfig(5); }

// gradient_ascent with a tiny surrogate refit in sync mode with lag 0, so
// that model version 1 (and its checkpoint), fitted on generation 1, is
// stored before generation 2 is handed out.
v1::SessionConfig ModelConfig() {
  v1::SessionConfig config = SmallConfig(6);
  config.mutable_optimizer()->set_name("gradient_ascent");
  auto& optimizer = *config.mutable_optimizer()->mutable_params();
  optimizer["prior_generations"] = 1;
  optimizer["steps"] = 5;
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  surrogate["refit_lag"] = 0;
  surrogate["ensemble_size"] = 1;
  surrogate["max_epochs"] = 3;
  surrogate["min_trials"] = 8;
  surrogate["gabor_scales"] = 2;
  surrogate["gabor_orientations"] = 4;
  return config;
}

class DamagedStoreTest : public ::testing::TestWithParam<Damage> {};

TEST_P(DamagedStoreTest, SessionIsDataLossNamingTheRowNeverServedOrResumed) {
  const Damage& damage = GetParam();
  const std::string dir = FreshTempDir(std::string("damaged-") + damage.name);
  std::string id, healthy;
  {
    auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/a.log");
    ASSERT_TRUE(server.ok()) << server.status();
    auto client = ConnectTo(**server);
    ASSERT_NE(client, nullptr);
    auto session = client->CreateSession(damage.config());
    ASSERT_TRUE(session.ok()) << session.status();
    id = session->id();
    // Generation 1 answered, then 3 of generation 2's 10 stimuli handed out.
    auto batch = client->NextStimuli(id, 0);
    ASSERT_TRUE(batch.ok()) << batch.status();
    std::vector<v1::Response> responses;
    for (const v1::Stimulus& s : batch->stimuli()) {
      v1::Response r;
      r.set_stimulus_id(s.id());
      r.add_rates(static_cast<double>(s.png().size() % 17));
      responses.push_back(std::move(r));
    }
    ASSERT_TRUE(client->ReportResponses(id, "r1", responses).ok());
    ASSERT_TRUE(client->NextStimuli(id, 3).ok());
    auto other = client->CreateSession(SmallConfig(7));
    ASSERT_TRUE(other.ok()) << other.status();
    healthy = other->id();
    ASSERT_TRUE(client->NextStimuli(healthy, 2).ok());
    auto stopped = (*server)->Stop();
    ASSERT_TRUE(stopped.ok() && *stopped == 0);
  }
  const std::string path = dir + "/data/stimloop.sqlite";
  std::string where = damage.where;
  where.replace(where.find('?'), 1, "'" + id + "'");
  ASSERT_TRUE(FlipStoredByte(path, damage.table, damage.column, where));

  auto server = ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/b.log");
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string expected =
      absl::StrCat("session '", id, "' ", damage.error_words, ": stored ", damage.column,
                   " fails its checksum");
  // The restart says which session could not be resumed and why ...
  EXPECT_THAT(ReadBytes(dir + "/b.log"), HasSubstr("cannot resume session " + id));
  EXPECT_THAT(ReadBytes(dir + "/b.log"), HasSubstr(expected));
  // ... every request naming it gets that error, nothing damaged is served ...
  auto client = ConnectTo(**server);
  ASSERT_NE(client, nullptr);
  auto next = client->NextStimuli(id, 0);
  EXPECT_EQ(next.status().code(), absl::StatusCode::kDataLoss) << next.status();
  EXPECT_THAT(std::string(next.status().message()), HasSubstr(expected));
  auto described = client->GetSession(id);
  EXPECT_EQ(described.status().code(), absl::StatusCode::kDataLoss) << described.status();
  // ... and the other sessions go on.
  auto other = client->NextStimuli(healthy, 0);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->stimuli_size(), 8);
}

INSTANTIATE_TEST_SUITE_P(
    StoredPayloads, DamagedStoreTest,
    ::testing::Values(
        // Stimulus 15 (generation 2, not yet handed out) is the next one served.
        Damage{"png", GeneticConfig, "stimuli", "png", "session_id = ? AND sequence = 15",
               "stimulus 15"},
        Damage{"optimizer_state", GeneticConfig, "generations", "optimizer_state",
               "session_id = ? AND generation = 2", "generation 2"},
        Damage{"checkpoint", ModelConfig, "model_versions", "checkpoint",
               "session_id = ? AND version = 1", "model version 1"}),
    [](const ::testing::TestParamInfo<Damage>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace stimloop
