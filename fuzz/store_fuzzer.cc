// libFuzzer target over the store reader: the input becomes the session
// store file <dir>/stimloop.sqlite, which is then opened and every session
// in it loaded and restored (SessionStore::Open, OpenSessionIds,
// LoadSession, Session::Restore) and a restored one described (asking it
// for stimuli would cost a proposal per input: the service fuzzer covers
// that). A damaged store must give an error status, never a crash, a
// sanitizer report or a leak.
//
// The first byte chooses how the input makes the file:
//   0: the rest of the input is the file, byte for byte;
//   1: the rest is a list of 5-byte patches (little-endian offset, byte)
//      applied to a valid store written at start-up (three sessions, two
//      answered generations each: random, genetic closed, and cmaes with a
//      third generation handed out and not answered);
//   2: the rest is SQL run on that valid store (plain SQLite) before opening,
//      so rows can be changed while the file stays a valid database.
#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/fuzz_env.h"
#include "server/session.h"
#include "server/session_manager.h"
#include "server/session_store.h"

namespace stimloop {
namespace {

constexpr int kMaxPatches = 64;

struct BaseStore {
  std::string bytes;                     // a valid store file, WAL checkpointed
  std::vector<std::string> session_ids;  // the sessions in it
};

v1::SessionConfig TinyConfig(const std::string& optimizer, uint64_t seed) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.set_num_neurons(2);
  config.mutable_optimizer()->set_name(optimizer);
  config.mutable_image_space()->set_name("spectral");
  // 4 x 4 frequencies: a 16-dimensional code keeps the CMA-ES state (its
  // covariance) and so the base store small, which is most of an input's
  // cost.
  (*config.mutable_image_space()->mutable_params())["cutoff"] = 4;
  config.set_generation_size(4);
  config.set_seed(seed);
  return config;
}

// Hands out a generation and reports a response to each of its stimuli.
void AnswerGeneration(Session& session, const std::string& request_id) {
  v1::StimulusBatch batch;
  if (!session.Next(0, &batch).ok()) abort();
  google::protobuf::RepeatedPtrField<v1::Response> responses;
  double rate = 1;
  for (const v1::Stimulus& stimulus : batch.stimuli()) {
    v1::Response* response = responses.Add();
    response->set_stimulus_id(stimulus.id());
    response->add_rates(rate++);
    response->add_rates(0.5);
  }
  v1::ReportResponsesAck ack;
  if (!session.Report(request_id, responses, &ack).ok()) abort();
}

// Shared by every restored session, as in the server (no thread per session).
WorkPool& SharedPool() {
  static auto* pool = new WorkPool(1);
  return *pool;
}

BaseStore MakeBaseStore() {
  const std::string dir = FreshFuzzDir("store-base");
  BaseStore base;
  {
    auto store = SessionStore::Open(dir);
    if (!store.ok()) abort();  // the harness's own set-up, not a finding
    SessionManager sessions(store->get(), 4, AssetsDir(), &SharedPool());
    for (const char* optimizer : {"random", "genetic", "cmaes"}) {
      auto session = sessions.Create(TinyConfig(optimizer, base.session_ids.size() + 1));
      if (!session.ok()) abort();
      base.session_ids.push_back((*session)->id());
      AnswerGeneration(**session, "a");
      AnswerGeneration(**session, "b");
    }
    auto genetic = sessions.Find(base.session_ids[1]);
    if (!genetic.ok() || !(*genetic)->Close().ok()) abort();
    auto cmaes = sessions.Find(base.session_ids[2]);
    v1::StimulusBatch block;
    if (!cmaes.ok() || !(*cmaes)->Next(0, &block).ok()) abort();
  }
  std::ifstream in(dir + "/" + SessionStore::kFileName, std::ios::binary);
  base.bytes.assign(std::istreambuf_iterator<char>(in), {});
  return base;
}

// The store file the input describes (see the top of this file).
std::string StoreFile(const BaseStore& base, const uint8_t* data, size_t size) {
  if (size == 0) return "";
  const uint8_t mode = data[0] % 3;
  ++data;
  --size;
  if (mode == 0) return std::string(reinterpret_cast<const char*>(data), size);
  std::string file = base.bytes;
  if (mode == 1) {
    for (size_t i = 0; i + 5 <= size && i / 5 < kMaxPatches; i += 5) {
      uint32_t offset;
      std::memcpy(&offset, data + i, 4);
      file[offset % file.size()] = static_cast<char>(data[i + 4]);
    }
  }
  return file;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), bytes.size());
}

// Runs the input's SQL (mode 2) on the file with plain SQLite; errors are
// part of the game.
void RunSql(const std::string& path, const uint8_t* data, size_t size) {
  if (size < 2 || data[0] % 3 != 2) return;
  const std::string sql(reinterpret_cast<const char*>(data + 1), size - 1);
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  }
  sqlite3_close(db);
}

void Exercise(SessionStore& store, const std::vector<std::string>& known_ids) {
  std::vector<std::string> ids = known_ids;
  auto open = store.OpenSessionIds();
  if (open.ok()) ids.insert(ids.end(), open->begin(), open->end());
  for (const std::string& id : ids) {
    auto journaled = store.LoadSession(id);
    if (!journaled.ok()) continue;
    auto session = Session::Restore(*journaled, &store, AssetsDir(), &SharedPool());
    if (!session.ok()) continue;
    v1::Session described;
    (*session)->Describe(/*with_images=*/true, &described);
    v1::SessionStats stats;
    (*session)->Stats(&stats);
  }
}

}  // namespace
}  // namespace stimloop

namespace {
const stimloop::BaseStore* base_store = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  stimloop::InitFuzzProcess();
  base_store = new stimloop::BaseStore(stimloop::MakeBaseStore());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = stimloop::FreshFuzzDir("store");
  const std::string path = dir + "/" + stimloop::SessionStore::kFileName;
  stimloop::WriteFile(path, stimloop::StoreFile(*base_store, data, size));
  stimloop::RunSql(path, data, size);
  stimloop::StoreOptions options;
  options.sync = stimloop::StoreOptions::Sync::kNormal;
  auto store = stimloop::SessionStore::Open(dir, options);
  if (store.ok()) stimloop::Exercise(**store, base_store->session_ids);
  return 0;
}
