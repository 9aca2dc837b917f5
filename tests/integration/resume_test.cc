// Crash-safe resume: the real server is killed with SIGKILL at random
// (seeded) moments during a simulated session and restarted on the same data
// directory. Checks that no acknowledged response is lost, that stimuli
// handed out before a crash can still be answered, that a retried report is
// answered from the store, and that every stimulus equals, byte for byte,
// the one an uninterrupted run with the same seed and responses gives.
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "clients/simulated_rig.h"
#include "optimizers/image_io.h"
#include "tests/integration/test_server.h"

namespace stimloop {
namespace {

constexpr int64_t kStimuli = 200;  // stimuli the rig works through (20 generations)
constexpr int kMinKills = 24;

int64_t Sequence(const std::string& stimulus_id) {
  return std::stoll(stimulus_id.substr(stimulus_id.rfind('-') + 1));
}

// The simulated rig's measurement, computed in plain double arithmetic from
// the PNG the server sent: a simple cell's response, peak_rate *
// max(0, <x - 0.5, optimum - 0.5> / <optimum - 0.5, optimum - 0.5>)^2, with
// the simulated neuron's exact optimum as its template. (The test needs the
// same rates for the same image in every run and process, whatever the BLAS
// does; SimulatedRig::TrueRates goes through LibTorch's matmul.)
class NeuronRates {
 public:
  explicit NeuronRates(const SimulatedNeuron& neuron) : peak_(neuron.optimum_rate()) {
    const torch::Tensor optimum = neuron.Optimum().to(torch::kDouble).contiguous().flatten();
    template_.assign(optimum.data_ptr<double>(), optimum.data_ptr<double>() + optimum.numel());
    for (double& t : template_) {
      t -= 0.5;
      norm_ += t * t;
    }
  }

  absl::StatusOr<std::vector<double>> Rates(const std::string& png) const {
    auto image = DecodeImage(png);
    if (!image.ok()) return image.status();
    const torch::Tensor pixels = image->contiguous().flatten();
    if (pixels.numel() != static_cast<int64_t>(template_.size())) {
      return absl::InvalidArgumentError("png: wrong size");
    }
    const uint8_t* p = pixels.data_ptr<uint8_t>();
    double drive = 0;
    for (size_t i = 0; i < template_.size(); ++i) drive += (p[i] / 255.0 - 0.5) * template_[i];
    const double x = std::max(0.0, drive / norm_);
    return std::vector<double>{peak_ * x * x};
  }

 private:
  double peak_;
  std::vector<double> template_;
  double norm_ = 0;
};

// A server on one data directory that can be killed and started again, and
// a client connected to the current incarnation.
class CrashableServer {
 public:
  explicit CrashableServer(std::string dir) : dir_(std::move(dir)) {}

  void Start() {
    auto server = ServerProcess::Start(DefaultServerBinary(), dir_ + "/data",
                                       dir_ + "/server-" + std::to_string(starts_++) + ".log");
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    RigClientOptions options;
    options.address = server_->address();
    options.report_attempts = 1;  // this test retries across restarts itself
    auto client = RigClient::Connect(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // SIGKILL (now, or already sent by another thread), reap, start again.
  void KillAndRestart() {
    server_->Kill();
    client_.reset();
    Start();
  }

  RigClient& client() { return *client_; }
  ServerProcess& process() { return *server_; }
  int starts() const { return starts_; }

 private:
  std::string dir_;
  int starts_ = 0;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<RigClient> client_;
};

struct RunResult {
  int64_t end_sequence = 0;  // the first sequence never handed out, at the end
  std::map<int64_t, std::string> pngs;  // by sequence: every stimulus the rig received
  std::map<int64_t, int64_t> model_versions;  // by sequence: the version that proposed it
  std::set<int64_t> lost;  // handed out by a NextStimuli whose reply a crash swallowed
  v1::SessionCounts counts;  // at the end
  int kills = 0;
  int answered_after_restart = 0;  // reports of stimuli received before a crash
  std::string kill_log;  // where each kill hit, for failure messages
};

// A gradient_ascent session with a tiny surrogate refit every generation, in
// the default refit mode (the interrupted run must equal the uninterrupted
// one bit for bit): resume must also restore the model.
v1::SessionConfig ModelBasedConfig(uint64_t seed) {
  v1::SessionConfig config = SmallConfig(seed);
  config.mutable_optimizer()->set_name("gradient_ascent");
  auto& optimizer = *config.mutable_optimizer()->mutable_params();
  optimizer["prior_generations"] = 1;
  optimizer["steps"] = 10;
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  surrogate["ensemble_size"] = 2;
  surrogate["max_epochs"] = 5;
  surrogate["min_trials"] = 8;
  surrogate["gabor_scales"] = 2;
  surrogate["gabor_orientations"] = 4;
  return config;
}

// Plays the rig for one session of `config` until at least
// `min_sequence` stimuli were handed out. With `kill`, SIGKILLs the server
// every few calls, between calls or during one, and restarts it, until at
// least kMinKills kills. Batches that start with a stimulus in `ignore` are
// dropped unanswered and asked again: the reference run does this for the
// batches a crash swallowed in the killed run, so that both runs make the
// same calls to the server.
void PlayRig(const std::string& name, const v1::SessionConfig& config, bool kill,
             int64_t min_sequence, const std::set<int64_t>& ignore, RunResult* out) {
  const uint64_t seed = config.seed();
  RunResult& result = *out;
  CrashableServer server(FreshTempDir(name));
  server.Start();
  if (::testing::Test::HasFatalFailure()) return;
  auto session = server.client().CreateSession(config);
  ASSERT_TRUE(session.ok()) << session.status();
  const std::string id = session->id();

  SimulatedNeuronSpec spec;
  spec.height = spec.width = 32;
  spec.seed = seed;
  auto neuron = SimulatedNeuron::Create(spec);
  ASSERT_TRUE(neuron.ok()) << neuron.status();
  const NeuronRates rig(**neuron);

  // Separate streams, so that the calls do not depend on the kills.
  std::mt19937_64 step_plan(seed);
  std::mt19937_64 kill_plan(seed + 1);
  const int steps[] = {0, 1, 3, 4, 10};  // max_count per NextStimuli; 0: rest of generation
  int calls_until_kill = 1 + static_cast<int>(kill_plan() % 6);
  int repeat_max_count = -1;  // asks again with this after an ignored batch
  int64_t next_sequence = 1;
  int64_t acknowledged = 0;  // responses counted in the last ack received
  std::vector<v1::Stimulus> batch;  // received, not yet reported
  bool batch_survived_crash = false;
  int reports = 0;
  std::string last_request_id;
  std::vector<v1::Response> last_responses;
  v1::ReportResponsesAck last_ack;

  while (next_sequence < min_sequence || (kill && result.kills < kMinKills) || !batch.empty()) {
    // The next call: ask for stimuli, or report the ones received.
    const bool asking = batch.empty();
    int max_count = 0;
    if (asking) {
      max_count = repeat_max_count >= 0 ? repeat_max_count
                                        : steps[step_plan() % std::size(steps)];
      repeat_max_count = -1;
    }
    std::vector<v1::Response> responses;
    int64_t counted = 0;
    for (const v1::Stimulus& s : batch) {
      // Every 7th stimulus is skipped (an aborted trial), every 4th shown
      // twice; rates are the simulated neuron's, deterministic per image.
      const int64_t sequence = Sequence(s.id());
      auto rates = rig.Rates(s.png());
      ASSERT_TRUE(rates.ok()) << rates.status();
      for (int p = 0; p < (sequence % 4 == 0 ? 2 : 1); ++p) {
        v1::Response r;
        r.set_stimulus_id(s.id());
        if (sequence % 7 == 0 && p == 0) {
          r.set_skipped(true);
        } else {
          for (double rate : *rates) r.add_rates(rate * (p + 1));
          ++counted;
        }
        responses.push_back(std::move(r));
      }
    }
    const std::string request_id = "report-" + std::to_string(reports);

    const bool kill_now = kill && --calls_until_kill == 0;
    const bool during_call = kill_now && kill_plan() % 2 == 0;
    const auto delay =
        absl::Microseconds(kill_now ? static_cast<int64_t>(kill_plan() % 3000) : 0);
    absl::StatusOr<v1::StimulusBatch> got_batch;
    absl::StatusOr<v1::ReportResponsesAck> got_ack;
    for (int attempt = 0;; ++attempt) {
      ASSERT_LT(attempt, 2) << "a call failed after a restart";
      std::thread killer;
      if (during_call && attempt == 0) {
        // The crash moment, drawn from the seed: somewhere in this call.
        const pid_t pid = server.process().pid();
        killer = std::thread([pid, delay] {
          absl::SleepFor(delay);
          ::kill(pid, SIGKILL);
        });
      }
      bool ok;
      if (asking) {
        got_batch = server.client().NextStimuli(id, max_count);
        ok = got_batch.ok();
      } else {
        got_ack = server.client().ReportResponses(id, request_id, responses);
        ok = got_ack.ok();
      }
      if (killer.joinable()) killer.join();
      if (!ok) {
        ASSERT_TRUE(during_call && attempt == 0)
            << "call failed without a crash: "
            << (asking ? got_batch.status() : got_ack.status());
      }
      if (kill_now && attempt == 0) {
        server.KillAndRestart();
        if (::testing::Test::HasFatalFailure()) return;
        ++result.kills;
        result.kill_log += (asking ? " next" : " report") + std::string(during_call ? "-during" : "-after") +
                           (ok ? "" : "-failed") + "@" + std::to_string(next_sequence);
        calls_until_kill = 1 + static_cast<int>(kill_plan() % 6);
        if (!batch.empty()) batch_survived_crash = true;

        // Nothing acknowledged is lost; an unacknowledged report is there
        // whole or not at all.
        auto now = server.client().GetSession(id);
        ASSERT_TRUE(now.ok()) << now.status();
        const int64_t stored = now->counts().responses();
        if (asking) {
          EXPECT_EQ(stored, acknowledged) << "after kill " << result.kills;
        } else if (ok) {  // just acknowledged
          EXPECT_EQ(stored, acknowledged + counted) << "after kill " << result.kills;
        } else {  // in flight: there whole or not at all
          EXPECT_TRUE(stored == acknowledged || stored == acknowledged + counted)
              << "after kill " << result.kills << ": " << stored << " responses stored, "
              << acknowledged << " acknowledged, " << counted << " in flight";
        }
        // A retry of the last acknowledged report is answered from the store.
        if (!last_request_id.empty()) {
          auto retried = server.client().ReportResponses(id, last_request_id, last_responses);
          ASSERT_TRUE(retried.ok()) << retried.status();
          EXPECT_TRUE(retried->duplicate());
          EXPECT_EQ(retried->counts().SerializeAsString(),
                    last_ack.counts().SerializeAsString());
        }
      }
      if (ok) break;
    }

    if (asking) {
      std::vector<v1::Stimulus> received(got_batch->stimuli().begin(),
                                         got_batch->stimuli().end());
      ASSERT_FALSE(received.empty());
      const int64_t first = Sequence(received.front().id());
      if (ignore.count(first) > 0) {
        for (const auto& s : received) EXPECT_EQ(ignore.count(Sequence(s.id())), 1u) << s.id();
        next_sequence = Sequence(received.back().id()) + 1;
        repeat_max_count = max_count;
        continue;
      }
      for (int64_t lost = next_sequence; lost < first; ++lost) result.lost.insert(lost);
      for (const auto& s : received) {
        EXPECT_EQ(s.id(), id + "-" + std::to_string(Sequence(s.id())));
        result.pngs[Sequence(s.id())] = s.png();
        result.model_versions[Sequence(s.id())] = s.model_version();
      }
      next_sequence = Sequence(received.back().id()) + 1;
      batch = std::move(received);
      batch_survived_crash = false;
    } else {
      EXPECT_EQ(got_ack->counts().responses(), acknowledged + counted)
          << "report " << request_id << " (duplicate: " << got_ack->duplicate() << ")";
      acknowledged = got_ack->counts().responses();
      if (batch_survived_crash) ++result.answered_after_restart;
      last_request_id = request_id;
      last_responses = responses;
      last_ack = *got_ack;
      ++reports;
      batch.clear();
    }
  }

  auto end = server.client().GetSession(id);
  EXPECT_TRUE(end.ok()) << end.status();
  if (end.ok()) result.counts = end->counts();
  EXPECT_EQ(result.counts.responses(), acknowledged);
  result.end_sequence = next_sequence;
  auto stopped = server.process().Stop();
  EXPECT_TRUE(stopped.ok() && *stopped == 0) << "graceful stop after the run";
}

// Runs `config` once with kills and once without (making the same calls),
// and checks that both runs handed out the same stimuli and counts.
// Returns the killed run's result through `killed_out` when given.
void ExpectResumeIsExact(const std::string& name, const v1::SessionConfig& config,
                         RunResult* killed_out = nullptr) {
  RunResult killed, reference;
  PlayRig(name + "-killed", config, /*kill=*/true, kStimuli, {}, &killed);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  PlayRig(name + "-reference", config, /*kill=*/false, killed.end_sequence, killed.lost,
          &reference);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_EQ(reference.end_sequence, killed.end_sequence);

  EXPECT_GE(killed.kills, kMinKills);
  EXPECT_GT(killed.answered_after_restart, 0)
      << "no stimulus handed out before a crash was answered after it";
  EXPECT_EQ(killed.counts.SerializeAsString(), reference.counts.SerializeAsString())
      << "killed: " << killed.counts.ShortDebugString()
      << "\nreference: " << reference.counts.ShortDebugString();
  ASSERT_EQ(killed.pngs.size(), reference.pngs.size());
  std::vector<int64_t> differ;
  for (const auto& [sequence, png] : reference.pngs) {
    auto it = killed.pngs.find(sequence);
    ASSERT_NE(it, killed.pngs.end()) << "stimulus " << sequence;
    if (it->second != png) differ.push_back(sequence);
  }
  EXPECT_TRUE(differ.empty()) << differ.size() << " stimuli differ after resume, the first "
                              << (differ.empty() ? 0 : differ.front()) << " of "
                              << reference.pngs.size() << "; kills:" << killed.kill_log
                              << "; lost: " << killed.lost.size();
  EXPECT_EQ(killed.model_versions, reference.model_versions);
  if (killed_out != nullptr) *killed_out = std::move(killed);
}

TEST(ResumeTest, SessionSurvivesRepeatedSigkillsUnchanged) {
  ExpectResumeIsExact("resume-genetic", SmallConfig(20240611));
}

// Kills land before, during and after refits; every generation after a
// restart must be proposed by the same model version as without kills.
TEST(ResumeTest, ModelBasedSessionSurvivesRepeatedSigkillsUnchanged) {
  RunResult killed;
  ExpectResumeIsExact("resume-gradient-ascent", ModelBasedConfig(20240612), &killed);
  ASSERT_FALSE(killed.model_versions.empty());
  // One version per generation after the first two (sync, lag 1).
  EXPECT_GE(killed.model_versions.rbegin()->second, 15);
}

// The same with the parametric Gabor surrogate (surrogate.params.model_class
// 1), configured through the proto like any session: its versions are
// checkpointed and restored exactly too.
TEST(ResumeTest, ParametricModelSessionSurvivesRepeatedSigkillsUnchanged) {
  v1::SessionConfig config = ModelBasedConfig(20240613);
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  for (const char* flexible_only : {"max_epochs", "gabor_scales", "gabor_orientations"}) {
    surrogate.erase(flexible_only);
  }
  surrogate["model_class"] = 1;
  surrogate["parametric_starts"] = 2;
  surrogate["parametric_steps"] = 20;
  RunResult killed;
  ExpectResumeIsExact("resume-parametric", config, &killed);
  ASSERT_FALSE(killed.model_versions.empty());
  EXPECT_GE(killed.model_versions.rbegin()->second, 15);
}

// Both model classes in one ensemble (model_class 2): each version holds
// two fits, the second warm-started from the previous version's, and the
// join decision; all of it must come back exactly from the checkpoints.
TEST(ResumeTest, PairedModelSessionSurvivesRepeatedSigkillsUnchanged) {
  v1::SessionConfig config = ModelBasedConfig(20240615);
  auto& surrogate = *config.mutable_surrogate()->mutable_params();
  surrogate["model_class"] = 2;
  surrogate["parametric_starts"] = 2;
  surrogate["parametric_steps"] = 20;
  RunResult killed;
  ExpectResumeIsExact("resume-paired", config, &killed);
  ASSERT_FALSE(killed.model_versions.empty());
  EXPECT_GE(killed.model_versions.rbegin()->second, 15);
}

// The default strategy (no optimizer named: portfolio in the spectral
// space) in the default refit mode, with a surrogate small enough for a
// test: its split between gradient ascent and CMA-ES, both sources' states
// and the model versions all resume exactly. Without the strategy's default
// repeats: PlayRig tells lost batches by sequence, which assumes hand-out
// order is sequence order (repeats are interleaved); resuming with repeats
// is checked in process (tests/server/store_restore_test.cc).
TEST(ResumeTest, DefaultStrategySessionSurvivesRepeatedSigkillsUnchanged) {
  v1::SessionConfig config = ModelBasedConfig(20240614);
  config.clear_optimizer();
  config.clear_image_space();
  config.mutable_repeats()->set_per_generation(0);
  auto& optimizer = *config.mutable_optimizer()->mutable_params();
  optimizer["gradient_ascent.steps"] = 10;
  RunResult killed;
  ExpectResumeIsExact("resume-default", config, &killed);
  int64_t newest = 0;  // CMA-ES's stimuli name no version
  for (const auto& [sequence, version] : killed.model_versions) newest = std::max(newest, version);
  EXPECT_GE(newest, 10);
}

}  // namespace
}  // namespace stimloop
