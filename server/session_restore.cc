// Session::Restore: rebuilds a session from its journal (see
// server/session_restore.h for what is rebuilt and how).
#include "server/session_restore.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "models/refit_scheduler.h"
#include "optimizers/image_io.h"
#include "optimizers/optimizer_state.h"
#include "server/asset_paths.h"
#include "server/session.h"
#include "server/session_config.h"

namespace stimloop {
namespace {

// Names journaled response k in errors: its row in the store when known.
std::string ResponseRow(const JournaledSession& journaled, size_t k) {
  const std::string stimulus = journaled.responses[k].stimulus_id;
  if (k < journaled.response_rows.size()) {
    return absl::StrCat("responses row ", journaled.response_rows[k], " (stimulus '", stimulus,
                        "')");
  }
  return absl::StrCat("response ", k, " (stimulus '", stimulus, "')");
}

}  // namespace

static_assert(kJournaledModelVersions >= kMaxRefitLag + 1,
              "Resume needs the version the next generation is assigned");

absl::StatusOr<std::unique_ptr<Session>> Session::Restore(const JournaledSession& journaled,
                                                          SessionJournal* journal,
                                                          const AssetsDir& assets,
                                                          WorkPool* pool) {
  // Sessions journaled before the fixed-lag refit pipeline may name its
  // removed parameters; they restore under the pipeline of today.
  v1::SessionConfig stored = journaled.config;
  for (const char* removed : kRemovedRefitParams) {
    if (stored.surrogate().params().count(removed) != 0) {
      stored.mutable_surrogate()->mutable_params()->erase(removed);
    }
  }
  auto config = ResolveConfig(stored);
  if (!config.ok()) return config.status();
  if (absl::Status s = ConfineAssetPaths(assets, &*config); !s.ok()) return s;
  auto built = Build(journaled.id, *std::move(config), journaled.created, journal, pool);
  if (!built.ok()) return built.status();
  std::unique_ptr<Session> session = *std::move(built);
  Session& s = *session;
  const std::string where = absl::StrCat("journal of session '", journaled.id, "': ");

  absl::MutexLock lock(&s.mu_);
  s.closed_ = journaled.closed;
  s.ledger_.RestoreGeneration(journaled.generation);
  if (journaled.generation > 0) {
    if (absl::Status loaded = LoadOptimizerState(*s.optimizer_, journaled.optimizer_state);
        !loaded.ok()) {
      return absl::DataLossError(absl::StrCat(where, "optimizer_state of generation ",
                                              journaled.generation, ": ", loaded.message()));
    }
    s.committed_state_ = journaled.optimizer_state;
  }

  // Records, by sequence; the last generation's unhanded stimuli queue up in
  // hand-out order.
  std::vector<const JournaledStimulus*> queue;
  for (size_t i = 0; i < journaled.stimuli.size(); ++i) {
    const JournaledStimulus& stimulus = journaled.stimuli[i];
    const StimulusEntry& e = stimulus.entry;
    if (e.sequence != static_cast<int64_t>(i) + 1 ||
        e.id != absl::StrCat(journaled.id, "-", e.sequence) || e.generation < 1 ||
        e.generation > journaled.generation) {
      return absl::DataLossError(absl::StrCat(where, "stimulus '", e.id, "' (sequence ",
                                              e.sequence, ", generation ", e.generation,
                                              ") is out of order"));
    }
    if (!stimulus.handed_out) {
      if (e.generation != journaled.generation) {
        return absl::DataLossError(absl::StrCat(where, "stimulus '", e.id, "' of generation ",
                                                e.generation,
                                                " was never handed out, yet generation ",
                                                journaled.generation, " was proposed"));
      }
      queue.push_back(&stimulus);
    }
    s.ledger_.RestoreStimulus(e, stimulus.handed_out);
  }
  std::stable_sort(queue.begin(), queue.end(),
                   [](const JournaledStimulus* a, const JournaledStimulus* b) {
                     return a->position < b->position;
                   });
  for (const JournaledStimulus* stimulus : queue) {
    s.ledger_.RestoreQueued(static_cast<size_t>(stimulus->entry.sequence - 1));
  }

  // Responses in journal order, exactly as Report applied them.
  int64_t non_skipped = 0;
  for (size_t k = 0; k < journaled.responses.size(); ++k) {
    const ResponseEntry& response = journaled.responses[k];
    auto index = s.ledger_.Find(response.stimulus_id, absl::StrCat("responses[", k, "]"));
    if (!index.ok()) return absl::DataLossError(absl::StrCat(where, index.status().message()));
    if (!s.ledger_.record(*index).handed_out) {
      return absl::DataLossError(absl::StrCat(where, "response ", k, " answers stimulus '",
                                              response.stimulus_id,
                                              "', which was never handed out"));
    }
    if (response.skipped) {
      s.ledger_.AddSkip(*index);
      continue;
    }
    if (response.rates.size() != static_cast<size_t>(s.config_.proto.num_neurons())) {
      return absl::DataLossError(absl::StrCat(where, "response ", k, " has ",
                                              response.rates.size(), " rates, expected ",
                                              s.config_.proto.num_neurons()));
    }
    if (absl::Status checked = CheckRates(response.rates, "rates"); !checked.ok()) {
      return absl::DataLossError(absl::StrCat(where, ResponseRow(journaled, k), ": ",
                                              checked.message(),
                                              "; the session cannot resume from it"));
    }
    s.ledger_.AddPresentation(*index, response.rates, s.objective_->Evaluate(response.rates),
                              /*told=*/non_skipped < journaled.responses_told);
    ++non_skipped;
  }
  if (journaled.responses_told > non_skipped) {
    return absl::DataLossError(absl::StrCat(where, "generation ", journaled.generation,
                                            " was told ", journaled.responses_told,
                                            " responses, but only ", non_skipped,
                                            " are journaled"));
  }
  for (const JournaledAck& a : journaled.acks) {
    s.acks_.emplace(a.request_id, StoredAck{a.ack, a.content_digest});
  }
  if (s.refits_ != nullptr && !s.closed_) {
    if (absl::Status resumed = s.ResumeRefits(journaled); !resumed.ok()) {
      return absl::DataLossError(absl::StrCat(where, resumed.message()));
    }
  }
  // The uninterrupted session started the next generation's Ask right after
  // committing this one (see "Proposing ahead" in session.h).
  if (s.ledger_.generation() > 0) s.StartProposalAhead();
  return session;
}

absl::Status Session::ResumeRefits(const JournaledSession& journaled) {
  // The training examples, exactly as Report appended them: every
  // non-skipped presentation in journal order, with the 8-bit image shown.
  std::vector<torch::Tensor> images(ledger_.size());
  for (const ResponseEntry& response : journaled.responses) {
    if (response.skipped) continue;
    auto index = ledger_.Find(response.stimulus_id, "responses");
    if (!index.ok()) return index.status();
    torch::Tensor& image = images[*index];
    if (!image.defined()) {
      auto decoded = DecodeImage(ledger_.record(*index).entry.png);
      if (!decoded.ok()) {
        return absl::Status(decoded.status().code(),
                            absl::StrCat("stimulus '", response.stimulus_id,
                                         "': ", decoded.status().message()));
      }
      image = *std::move(decoded);
    }
    if (absl::Status s = refits_->Append(image, response.rates, ledger_.ImageId(*index)); !s.ok()) {
      return s;
    }
  }
  std::vector<FittedVersion> fitted;
  for (const JournaledModelVersion& m : journaled.recent_models) {
    auto loaded = load_checkpoint_(m.checkpoint);
    if (!loaded.ok()) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("checkpoint of model version ", m.version, ": ",
                                       loaded.status().message()));
    }
    if ((*loaded)->version() != m.version) {
      return absl::DataLossError(absl::StrCat("checkpoint of model version ", m.version,
                                              " holds version ", (*loaded)->version()));
    }
    fitted.push_back({m.version, m.num_trials, *std::move(loaded)});
  }
  if (static_cast<int64_t>(journaled.generation_responses_told.size()) != journaled.generation) {
    return absl::DataLossError(absl::StrCat(journaled.generation_responses_told.size(),
                                            " generations journaled, the last is generation ",
                                            journaled.generation));
  }
  return refits_->Resume(journaled.generation_responses_told, std::move(fitted));
}

}  // namespace stimloop
