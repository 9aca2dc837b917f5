#include "server/session.h"

#include <algorithm>
#include <exception>
#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/echo.h"
#include "base/in_config.h"
#include "models/session_models.h"
#include "optimizers/objective.h"
#include "optimizers/optimizer_state.h"
#include "server/generation_builder.h"
#include "server/report_digest.h"

namespace stimloop {

absl::StatusOr<std::unique_ptr<Session>> Session::Create(std::string id, ResolvedConfig config,
                                                         absl::Time created,
                                                         SessionJournal* journal, WorkPool* pool) {
  auto session = Build(std::move(id), std::move(config), created, journal, pool);
  if (!session.ok()) return session.status();
  // After Build, so that an unknown name or bad value is reported as such.
  if (absl::Status s = CheckNoUnusedFields((*session)->config_); !s.ok()) return s;
  if (absl::Status s = journal->SessionCreated((*session)->id_, (*session)->config_.proto, created);
      !s.ok()) {
    return s;
  }
  return session;
}

absl::StatusOr<std::unique_ptr<Session>> Session::Build(std::string id, ResolvedConfig config,
                                                        absl::Time created,
                                                        SessionJournal* journal, WorkPool* pool) {
  std::unique_ptr<Session> session(
      new Session(std::move(id), std::move(config), created, journal, pool));
  const ResolvedConfig& c = session->config_;

  auto image_space = MakeImageSpace(c.image_space, c.shape);
  if (!image_space.ok()) return InConfig(image_space.status());
  session->image_space_ = *std::move(image_space);

  auto objective = Objective::Create(c.objective, c.proto.num_neurons());
  if (!objective.ok()) return InConfig(objective.status());
  session->objective_ = std::make_shared<const Objective>(*std::move(objective));

  OptimizerContext context{session->image_space_, session->objective_, c.proto.seed()};
  // Issue 4: model-based optimizers see the surrogate through a ModelSource.
  if (UsesSurrogate(c.optimizer.name)) {
    SessionModelsSpec models_spec;
    models_spec.surrogate = c.surrogate;
    models_spec.channels = c.shape.channels;
    models_spec.height = c.shape.height;
    models_spec.width = c.shape.width;
    models_spec.num_neurons = c.proto.num_neurons();
    models_spec.seed = c.proto.seed();
    models_spec.pool = pool;
    // Each finished version is journaled (metrics, checkpoint) before any
    // stimulus can name it; a failed write is reported, the fit still counts.
    const std::string session_id = session->id_;
    VersionCallback on_version = [journal, session_id](
                                     int64_t version, const std::map<std::string, double>& metrics,
                                     const std::string& checkpoint) {
      absl::Status s = journal->ModelVersionFitted(session_id, version, metrics, checkpoint);
      if (!s.ok()) {
        std::cerr << "session " << session_id << ": cannot store model version " << version
                  << ": " << s << "\n";
      }
    };
    auto models = MakeSessionModels(models_spec, std::move(on_version));
    if (!models.ok()) return models.status();
    session->refits_ = models->refits;
    session->load_checkpoint_ = models->load_checkpoint;
    context.models = models->source;
  }
  auto optimizer = MakeOptimizer(c.optimizer, context);
  if (!optimizer.ok()) return InConfig(optimizer.status());
  session->optimizer_ = *std::move(optimizer);
  // Lag 0 refits on the measurements of the generation before: nothing can
  // be prepared before they are in.
  const RefitScheduler* refits = session->refits_.get();
  session->propose_ahead_ =
      session->optimizer_->prepares_asks() && (refits == nullptr || refits->options().lag > 0);

  if (c.proto.reference_images().per_generation() > 0) {
    auto references =
        LoadImageFolder(c.reference_images_dir, c.shape, "config.reference_images.dir");
    if (!references.ok()) return references.status();
    session->references_ = *std::move(references);
  }
  return session;
}

Session::Session(std::string id, ResolvedConfig config, absl::Time created,
                 SessionJournal* journal, WorkPool* pool)
    : id_(std::move(id)),
      config_(std::move(config)),
      created_(created),
      journal_(journal),
      proposer_(&mu_, id_, pool),
      ledger_(id_, config_.proto.repeats()) {}

Session::~Session() {
  {
    absl::MutexLock lock(&mu_);
    if (refits_ != nullptr) refits_->Stop();  // a background BeforeAsk returns at once
    if (optimizer_ != nullptr) optimizer_->CancelAsks();  // and its Ask soon after
  }
  proposer_.Join();
}

absl::Status Session::ClosedError() const {
  return absl::FailedPreconditionError(absl::StrCat("session_id: '", id_, "' is closed"));
}

absl::Status Session::Next(int max_count, v1::StimulusBatch* batch) {
  absl::MutexLock lock(&mu_);
  if (closed_) return ClosedError();
  if (absl::Status s = CheckMaxCount(max_count); !s.ok()) return s;
  size_t journaled = 0;  // hand-outs journaled with a generation proposed here
  for (;;) {
    if (closed_) return ClosedError();
    if (ledger_.waiting() > 0) break;
    if (proposer_.running()) {
      AwaitProposer();
      continue;
    }
    if (absl::Status s = ProposeGeneration(max_count, &journaled); !s.ok()) return s;
  }
  return HandOut(max_count, batch, journaled);
}

size_t BatchCount(size_t waiting, int max_count, absl::FunctionRef<size_t(size_t)> png_bytes) {
  const size_t most =
      max_count == 0 ? waiting : std::min(waiting, static_cast<size_t>(max_count));
  size_t count = 1;
  for (size_t bytes = png_bytes(0); count < most; ++count) {
    bytes += png_bytes(count);
    if (bytes > kMaxBatchPngBytes) break;
  }
  return count;
}

absl::Status Session::HandOut(int max_count, v1::StimulusBatch* batch, size_t journaled) {
  size_t count = journaled;
  if (count == 0) {
    count = BatchCount(ledger_.waiting(), max_count, [&](size_t k) {
      return ledger_.record(ledger_.waiting_at(k)).entry.png.size();
    });
    std::vector<std::string> ids;
    ids.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      ids.push_back(ledger_.record(ledger_.waiting_at(i)).entry.id);
    }
    if (absl::Status s = journal_->StimuliHandedOut(id_, ids); !s.ok()) return s;
  }

  batch->set_generation(ledger_.generation());
  for (size_t index : ledger_.HandOut(count)) {
    ledger_.FillStimulus(index, /*with_image=*/true, batch->add_stimuli());
  }
  batch->set_remaining(static_cast<int32_t>(ledger_.waiting()));
  return absl::OkStatus();
}

absl::Status Session::TellChanges(std::vector<size_t>* told, std::string* before) {
  std::vector<Observation> observations = ledger_.Untold(told);
  *before = committed_state_.empty() ? SaveOptimizerState(*optimizer_) : committed_state_;
  if (absl::Status s = optimizer_->Tell(observations); !s.ok()) {
    return UndoOptimizer(*before, absl::InternalError(absl::StrCat(
                                      "optimizer rejected observations: ", s.message())));
  }
  return absl::OkStatus();
}

absl::Status Session::UndoOptimizer(const std::string& before, absl::Status status) {
  absl::Status restored = LoadOptimizerState(*optimizer_, before);
  return restored.ok() ? status : restored;
}

absl::Status Session::ProposeGeneration(int max_count, size_t* handed_out) {
  // Tell and Ask change the optimizer; its state before them undoes both if
  // anything after fails, so a failed request leaves the session unchanged.
  std::vector<size_t> told;
  std::string before;
  if (absl::Status s = TellChanges(&told, &before); !s.ok()) return s;
  auto undo = [&](absl::Status status) { return UndoOptimizer(before, std::move(status)); };
  const int64_t generation = ledger_.generation() + 1;
  const int64_t first_id = static_cast<int64_t>(ledger_.size()) + 1;
  const int optimizer_count = config_.proto.generation_size();
  // Fixes the model version (at once when a background PrepareAsk did), then
  // asks: fast when PrepareAsk prepared this Ask.
  if (refits_ != nullptr) refits_->BeforeAsk(generation);
  absl::StatusOr<std::vector<Candidate>> candidates = optimizer_->Ask(optimizer_count, first_id);
  if (!candidates.ok()) return undo(candidates.status());
  if (static_cast<int>(candidates->size()) != optimizer_count) {
    return undo(absl::InternalError(absl::StrCat("optimizer proposed ", candidates->size(),
                                                 " candidates, asked for ", optimizer_count)));
  }
  std::vector<const StimulusEntry*> repeats;
  for (size_t source : ledger_.RepeatSources()) repeats.push_back(&ledger_.record(source).entry);
  auto entries = BuildGeneration(
      id_, generation, first_id, *std::move(candidates),
      ReferenceCandidates(references_, config_.proto.reference_images().per_generation(),
                          generation, first_id + optimizer_count),
      repeats);
  if (!entries.ok()) return undo(entries.status());

  const size_t count = BatchCount(entries->size(), max_count,
                                  [&](size_t k) { return (*entries)[k].png.size(); });

  std::string state = SaveOptimizerState(*optimizer_);
  if (absl::Status s = journal_->GenerationProposed(id_, generation, *entries, state,
                                                    ledger_.responses(), count);
      !s.ok()) {
    return undo(s);
  }
  committed_state_ = std::move(state);
  CommitGeneration(generation, *std::move(entries), told);
  *handed_out = count;
  return absl::OkStatus();
}

void Session::CommitGeneration(int64_t generation, std::vector<StimulusEntry> entries,
                               const std::vector<size_t>& told) {
  ledger_.MarkTold(told);
  // The boundary's refit, on everything measured so far (also after a
  // validation block, where no Ask happened).
  if (refits_ != nullptr) refits_->AfterAsk(generation);
  ledger_.AddGeneration(generation, std::move(entries));
  StartProposalAhead();
}

void Session::AwaitProposer() {
  mu_.Unlock();
  const bool ran = proposer_.RunQueuedInline();
  mu_.Lock();
  if (!ran) mu_.Await(absl::Condition(this, &Session::AheadIdleOrStimuliLeft));
}

void Session::StartProposalAhead() {
  if (!propose_ahead_ || closed_ || proposer_.running()) return;
  proposer_.Start(optimizer_.get(), refits_.get(), ledger_.generation() + 1,
                  config_.proto.generation_size(), static_cast<int64_t>(ledger_.size()) + 1);
}

absl::Status Session::AnswerRetry(const StoredAck& stored, const std::string& request_id,
                                  const google::protobuf::RepeatedPtrField<v1::Response>& responses,
                                  v1::ReportResponsesAck* ack) const {
  auto digest = ReportDigest(responses);
  if (!digest.ok()) return digest.status();
  if (*digest != stored.content_digest) {
    return absl::AlreadyExistsError(absl::StrCat(
        "request_id: ", QuotedEcho(request_id), " already names a report of session '", id_,
        "' with other content (", stored.ack.accepted(), " responses); nothing was stored. A "
        "request_id names one report: a retry resends the same responses, new data needs a "
        "new request_id"));
  }
  *ack = stored.ack;
  ack->set_duplicate(true);
  return absl::OkStatus();
}

absl::Status Session::CheckResponses(
    const google::protobuf::RepeatedPtrField<v1::Response>& responses,
    std::vector<ResponseEntry>* entries, std::vector<size_t>* indices) const {
  if (absl::Status s = CheckResponseCount(responses.size()); !s.ok()) return s;
  const int num_neurons = config_.proto.num_neurons();
  entries->reserve(responses.size());
  indices->reserve(responses.size());
  for (int i = 0; i < responses.size(); ++i) {
    const v1::Response& response = responses[i];
    const std::string field = absl::StrCat("responses[", i, "]");
    auto index = ledger_.Find(response.stimulus_id(), absl::StrCat(field, ".stimulus_id"));
    if (!index.ok()) return index.status();
    if (!ledger_.record(*index).handed_out) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ".stimulus_id: ", QuotedEcho(response.stimulus_id()),
                       " has not been handed out by NextStimuli yet"));
    }
    if (absl::Status s = CheckResponseRates(response, field, num_neurons); !s.ok()) return s;
    entries->push_back({response.stimulus_id(),
                        std::vector<double>(response.rates().begin(), response.rates().end()),
                        response.skipped()});
    indices->push_back(*index);
  }
  return absl::OkStatus();
}

absl::Status Session::Report(const std::string& request_id,
                             const google::protobuf::RepeatedPtrField<v1::Response>& responses,
                             v1::ReportResponsesAck* ack) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckRequestId(request_id); !s.ok()) return s;
  // A retry is answered even once the session is closed: the rig whose
  // acknowledgement was lost learns that its data is stored.
  if (auto it = acks_.find(request_id); it != acks_.end()) {
    return AnswerRetry(it->second, request_id, responses, ack);
  }
  if (closed_) return ClosedError();

  // Validate everything before changing anything.
  std::vector<ResponseEntry> entries;
  std::vector<size_t> indices;
  if (absl::Status s = CheckResponses(responses, &entries, &indices); !s.ok()) return s;
  auto digest = ReportDigest(entries);
  if (!digest.ok()) return digest.status();

  // The counts after this report, acknowledged only once it is committed.
  const v1::SessionCounts counts = ledger_.CountsAfter(entries, indices);
  v1::ReportResponsesAck new_ack;
  new_ack.set_accepted(static_cast<int32_t>(entries.size()));
  *new_ack.mutable_counts() = counts;

  // The surrogate learns from the 8-bit images shown (decoded before the
  // commit, so a failure changes nothing).
  std::vector<torch::Tensor> shown;
  if (refits_ != nullptr) {
    for (size_t k = 0; k < entries.size(); ++k) {
      if (entries[k].skipped) continue;
      auto image = DecodeImage(ledger_.record(indices[k]).entry.png);
      if (!image.ok()) return absl::InternalError(absl::StrCat("stored stimulus: ", image.status().message()));
      shown.push_back(*std::move(image));
    }
  }

  if (absl::Status s =
          journal_->ResponsesReported(id_, request_id, *digest, entries, new_ack, absl::Now());
      !s.ok()) {
    return s;
  }

  for (size_t k = 0; k < entries.size(); ++k) {
    if (entries[k].skipped) {
      ledger_.AddSkip(indices[k]);
    } else {
      ledger_.AddPresentation(indices[k], entries[k].rates,
                              objective_->Evaluate(entries[k].rates));
    }
  }
  acks_.emplace(request_id, StoredAck{new_ack, *std::move(digest)});
  if (refits_ != nullptr) {
    size_t next_shown = 0;
    for (size_t k = 0; k < entries.size(); ++k) {
      if (entries[k].skipped) continue;
      // Cannot fail: every stimulus has the session's shape and neuron count.
      absl::Status appended =
          refits_->Append(shown[next_shown++], entries[k].rates, ledger_.ImageId(indices[k]));
      if (!appended.ok()) return absl::InternalError(appended.message());
    }
  }
  *ack = new_ack;
  return absl::OkStatus();
}

absl::Status Session::Close() {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::OkStatus();
  if (absl::Status s = journal_->SessionClosed(id_, absl::Now()); !s.ok()) return s;
  closed_ = true;
  if (refits_ != nullptr) refits_->Stop();  // no generation will need another fit
  return absl::OkStatus();
}

bool Session::is_open() const {
  absl::MutexLock lock(&mu_);
  return !closed_;
}

void Session::Describe(bool with_images, v1::Session* out) const {
  const Optimizer* guess_unlocked = nullptr;
  {
    absl::MutexLock lock(&mu_);
    out->set_id(id_);
    *out->mutable_config() = config_.proto;
    out->set_status(closed_ ? v1::SESSION_STATUS_CLOSED : v1::SESSION_STATUS_OPEN);
    const int64_t nanos = absl::ToUnixNanos(created_);
    out->mutable_created()->set_seconds(nanos / 1000000000);
    out->mutable_created()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
    *out->mutable_counts() = ledger_.Counts();

    if (const auto best = ledger_.BestMeasured(); best.has_value()) {
      v1::ScoredStimulus* scored = out->mutable_best_measured();
      ledger_.FillStimulus(best->records.front(), with_images, scored->mutable_stimulus());
      scored->set_mean_objective(best->mean_objective());
      scored->set_presentations(best->presentations);
    }
    if (!with_images) return;
    if (optimizer_->best_guess_is_thread_safe()) {
      // Seconds for gradient ascent: computed without the session lock, so
      // Next and Report (and a background Ask) go on meanwhile.
      guess_unlocked = optimizer_.get();
    } else {
      SetBestGuess(*optimizer_, out);  // these never Ask in the background
    }
  }
  // The optimizer lives as long as the session, which the caller holds.
  if (guess_unlocked != nullptr) SetBestGuess(*guess_unlocked, out);
}

void Session::SetBestGuess(const Optimizer& optimizer, v1::Session* out) {
  torch::Tensor guess = optimizer.BestGuess();
  if (!guess.defined()) return;
  auto png = EncodePng(ToUint8(guess));
  if (png.ok()) out->set_optimizer_best_png(*std::move(png));
}

}  // namespace stimloop
