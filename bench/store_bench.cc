// What the SQLite session store costs: time added per acknowledged report,
// disk bytes per stimulus, and the time to resume a long session.
//
//   store_bench --dir=/var/tmp/store-bench [--reports=1000] [--resume_stimuli=10000]
//
// Sessions run in process (Session + SessionStore, no gRPC): genetic
// optimizer in spectral space, 40 stimuli per generation, one neuron, rates
// computed from the PNG bytes. `dir` should be on the disk the server would
// use (fsync cost is the disk's); it is emptied first.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/session.h"
#include "server/session_config.h"
#include "server/session_restore.h"
#include "server/session_store.h"

ABSL_FLAG(std::string, dir, "/var/tmp/stimloop-store-bench", "Scratch directory (emptied).");
ABSL_FLAG(int, reports, 1000, "Reports timed per configuration.");
ABSL_FLAG(int, resume_stimuli, 10000, "Stimuli in the session timed for resume.");

namespace stimloop {
namespace {

// Forwards to `inner` and times ResponsesReported.
class TimingJournal : public SessionJournal {
 public:
  explicit TimingJournal(SessionJournal* inner) : inner_(inner) {}
  absl::Status SessionCreated(const std::string& id, const v1::SessionConfig& config,
                              absl::Time created) override {
    return inner_->SessionCreated(id, config, created);
  }
  absl::Status GenerationProposed(const std::string& id, int64_t generation,
                                  absl::Span<const StimulusEntry> stimuli,
                                  const std::string& state, int64_t told,
                                  size_t handed_out) override {
    return inner_->GenerationProposed(id, generation, stimuli, state, told, handed_out);
  }
  absl::Status StimuliHandedOut(const std::string& id,
                                absl::Span<const std::string> ids) override {
    return inner_->StimuliHandedOut(id, ids);
  }
  absl::Status ResponsesReported(const std::string& id, const std::string& request_id,
                                 const std::string& digest,
                                 absl::Span<const ResponseEntry> responses,
                                 const v1::ReportResponsesAck& ack,
                                 absl::Time received) override {
    const absl::Time start = absl::Now();
    absl::Status s = inner_->ResponsesReported(id, request_id, digest, responses, ack, received);
    durations.push_back(absl::Now() - start);
    return s;
  }
  absl::Status SessionClosed(const std::string& id, absl::Time closed) override {
    return inner_->SessionClosed(id, closed);
  }
  absl::Status ModelVersionFitted(const std::string& id, int64_t version,
                                  const std::map<std::string, double>& metrics,
                                  const std::string& checkpoint) override {
    return inner_->ModelVersionFitted(id, version, metrics, checkpoint);
  }
  std::vector<absl::Duration> durations;

 private:
  SessionJournal* inner_;
};

v1::SessionConfig Config(int side) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(side);
  config.mutable_image()->set_width(side);
  config.mutable_image()->set_channels(1);
  config.set_num_neurons(1);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(40);
  config.set_seed(1);
  return config;
}

std::unique_ptr<Session> NewSession(const std::string& id, int side, SessionJournal* journal) {
  auto resolved = ResolveConfig(Config(side));
  if (!resolved.ok()) {
    std::fprintf(stderr, "%s\n", resolved.status().ToString().c_str());
    std::exit(1);
  }
  auto session = Session::Create(id, *std::move(resolved), absl::Now(), journal);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(session);
}

void Check(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", status.ToString().c_str());
    std::exit(1);
  }
}

double Rate(const std::string& png) {
  double sum = 0;
  for (unsigned char c : png) sum += c;
  return sum / static_cast<double>(png.size());
}

// Hands out `per_report` stimuli and reports one response each, `reports`
// times; returns the duration of every Session::Report.
std::vector<absl::Duration> Run(Session& session, int reports, int per_report,
                                const std::string& prefix) {
  std::vector<absl::Duration> out;
  for (int i = 0; i < reports; ++i) {
    v1::StimulusBatch batch;
    Check(session.Next(per_report, &batch));
    google::protobuf::RepeatedPtrField<v1::Response> responses;
    for (const v1::Stimulus& s : batch.stimuli()) {
      v1::Response* r = responses.Add();
      r->set_stimulus_id(s.id());
      r->add_rates(Rate(s.png()));
    }
    v1::ReportResponsesAck ack;
    const absl::Time start = absl::Now();
    Check(session.Report(absl::StrCat(prefix, i), responses, &ack));
    out.push_back(absl::Now() - start);
  }
  return out;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

std::pair<double, double> P50P99(std::vector<absl::Duration> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return Ms(v[static_cast<size_t>(q * (v.size() - 1))]); };
  return {at(0.5), at(0.99)};
}

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::GetFlag(FLAGS_dir) + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

uintmax_t DirBytes(const std::string& dir) {
  uintmax_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

void ReportCost() {
  const int reports = absl::GetFlag(FLAGS_reports);
  std::printf("\n## Cost per acknowledged report (%d reports of 1 response, 64x64)\n\n", reports);
  std::printf("| configuration | journal call p50 | p99 | Session::Report p50 | p99 |\n");
  std::printf("|---|---|---|---|---|\n");
  {
    InMemoryJournal memory;
    TimingJournal timing(&memory);
    auto session = NewSession("m", 64, &timing);
    auto [r50, r99] = P50P99(Run(*session, reports, 1, "r"));
    auto [j50, j99] = P50P99(timing.durations);
    std::printf("| no store (InMemoryJournal) | %.3f ms | %.3f ms | %.3f ms | %.3f ms |\n", j50,
                j99, r50, r99);
  }
  for (auto sync : {StoreOptions::Sync::kFull, StoreOptions::Sync::kNormal}) {
    const bool full = sync == StoreOptions::Sync::kFull;
    StoreOptions options;
    options.sync = sync;
    auto store = SessionStore::Open(FreshDir(full ? "cost-full" : "cost-normal"), options);
    Check(store.status());
    TimingJournal timing(store->get());
    auto session = NewSession("s", 64, &timing);
    auto [r50, r99] = P50P99(Run(*session, reports, 1, "r"));
    auto [j50, j99] = P50P99(timing.durations);
    std::printf("| SQLite WAL, synchronous=%s | %.3f ms | %.3f ms | %.3f ms | %.3f ms |\n",
                full ? "FULL" : "NORMAL", j50, j99, r50, r99);
  }
  {
    auto store = SessionStore::Open(FreshDir("cost-gen"));
    Check(store.status());
    TimingJournal timing(store->get());
    auto session = NewSession("g", 64, &timing);
    Run(*session, std::max(1, reports / 40), 40, "g");
    auto [j50, j99] = P50P99(timing.durations);
    std::printf("| FULL, one report of 40 responses | %.3f ms | %.3f ms | | |\n", j50, j99);
  }
}

void DiskBytes() {
  std::printf("\n## Disk bytes per stimulus (10 generations of 40, one response each)\n\n");
  std::printf("| image | bytes/stimulus (file) | of which PNG | optimizer state/generation |\n");
  std::printf("|---|---|---|---|\n");
  for (int side : {64, 256}) {
    const std::string dir = FreshDir(absl::StrCat("disk-", side));
    int64_t png_bytes = 0, stimuli = 0;
    std::string state;
    {
      auto store = SessionStore::Open(dir);
      Check(store.status());
      auto session = NewSession("d", side, store->get());
      Run(*session, 10, 40, "d");
      auto journaled = (*store)->LoadSession("d");
      Check(journaled.status());
      for (const auto& s : journaled->stimuli) png_bytes += s.entry.png.size();
      stimuli = journaled->stimuli.size();
      state = journaled->optimizer_state;
    }  // closing folds the WAL into the file
    const double total = static_cast<double>(DirBytes(dir));
    std::printf("| %dx%d gray | %.0f | %.0f | %zu |\n", side, side, total / stimuli,
                static_cast<double>(png_bytes) / stimuli, state.size());
  }
}

void ResumeTime() {
  const int stimuli = absl::GetFlag(FLAGS_resume_stimuli);
  const std::string dir = FreshDir("resume");
  {
    StoreOptions fast;
    fast.sync = StoreOptions::Sync::kNormal;  // building only
    auto store = SessionStore::Open(dir, fast);
    Check(store.status());
    auto session = NewSession("big", 64, store->get());
    Run(*session, stimuli / 40, 40, "b");
  }
  const absl::Time start = absl::Now();
  auto store = SessionStore::Open(dir);
  Check(store.status());
  const absl::Time opened = absl::Now();
  auto ids = (*store)->OpenSessionIds();
  Check(ids.status());
  auto journaled = (*store)->LoadSession("big");
  Check(journaled.status());
  const absl::Time loaded = absl::Now();
  InMemoryJournal scratch;
  auto session = Session::Restore(*journaled, &scratch);
  Check(session.status());
  const absl::Time restored = absl::Now();
  std::printf("\n## Resume of a session of %zu stimuli and %zu responses (64x64, %.1f MB)\n\n",
              journaled->stimuli.size(), journaled->responses.size(),
              static_cast<double>(DirBytes(dir)) / 1e6);
  std::printf("| step | time |\n|---|---|\n");
  std::printf("| open + quick_check + schema check | %.0f ms |\n", Ms(opened - start));
  std::printf("| LoadSession (read all rows) | %.0f ms |\n", Ms(loaded - opened));
  std::printf("| Session::Restore (rebuild) | %.0f ms |\n", Ms(restored - loaded));
  std::printf("| total | %.0f ms |\n", Ms(restored - start));
}

}  // namespace
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  stimloop::ReportCost();
  stimloop::DiskBytes();
  stimloop::ResumeTime();
  return 0;
}
