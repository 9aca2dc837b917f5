#include "server/session.h"

#include <algorithm>
#include <iostream>
#include <cmath>
#include <exception>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "base/echo.h"
#include "base/in_config.h"
#include "base/thread_priority.h"
#include "models/session_models.h"
#include "optimizers/objective.h"
#include "optimizers/optimizer_state.h"
#include "server/report_digest.h"

namespace stimloop {
namespace {


// The sequence that `digits` spells as the session writes it: decimal
// digits only, no sign, space or leading zero ("5", never "05", "+5", " 5"),
// so that each stimulus has exactly one id; 0 for anything else.
int64_t ParseSequence(absl::string_view digits) {
  constexpr size_t kMaxDigits = 18;  // below 2^63: no overflow
  if (digits.empty() || digits.size() > kMaxDigits || digits[0] == '0') return 0;
  int64_t sequence = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    sequence = sequence * 10 + (c - '0');
  }
  return sequence;
}

}  // namespace

absl::Status CheckMaxCount(int max_count) {
  return CheckRange("max_count", max_count, 0, kMaxStimuliPerRequest);
}

absl::StatusOr<std::unique_ptr<Session>> Session::Create(std::string id, ResolvedConfig config,
                                                         absl::Time created,
                                                         SessionJournal* journal) {
  auto session = Build(std::move(id), std::move(config), created, journal);
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
                                                        SessionJournal* journal) {
  std::unique_ptr<Session> session(
      new Session(std::move(id), std::move(config), created, journal));
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
                 SessionJournal* journal)
    : id_(std::move(id)), config_(std::move(config)), created_(created), journal_(journal) {}

Session::~Session() {
  std::thread ahead;
  {
    absl::MutexLock lock(&mu_);
    if (refits_ != nullptr) refits_->Stop();  // a background BeforeAsk returns at once
    if (optimizer_ != nullptr) optimizer_->CancelAsks();  // and its Ask soon after
    ahead = std::move(ahead_thread_);
  }
  if (ahead.joinable()) ahead.join();
}

absl::Status Session::Next(int max_count, v1::StimulusBatch* batch) {
  absl::MutexLock lock(&mu_);
  auto closed_error = [this] {
    return absl::FailedPreconditionError(absl::StrCat("session_id: '", id_, "' is closed"));
  };
  if (closed_) return closed_error();
  if (absl::Status s = CheckMaxCount(max_count); !s.ok()) return s;
  for (;;) {
    if (closed_) return closed_error();
    if (!not_handed_out_.empty()) break;
    if (ahead_running_) {
      // Releases the lock while the background Ask runs; another call may
      // have proposed (or the session closed) meanwhile, hence the loop.
      mu_.Await(absl::Condition(this, &Session::AheadIdleOrStimuliLeft));
      continue;
    }
    if (absl::Status s = ProposeGeneration(); !s.ok()) return s;
  }
  return HandOut(max_count, batch);
}

absl::Status Session::HandOut(int max_count, v1::StimulusBatch* batch) {
  const size_t most =
      max_count == 0 ? not_handed_out_.size()
                     : std::min(not_handed_out_.size(), static_cast<size_t>(max_count));
  size_t count = 1;
  for (size_t bytes = records_[not_handed_out_[0]].entry.png.size(); count < most; ++count) {
    bytes += records_[not_handed_out_[count]].entry.png.size();
    if (bytes > kMaxBatchPngBytes) break;
  }
  std::vector<std::string> ids;
  ids.reserve(count);
  for (size_t i = 0; i < count; ++i) ids.push_back(records_[not_handed_out_[i]].entry.id);
  if (absl::Status s = journal_->StimuliHandedOut(id_, ids); !s.ok()) return s;

  batch->set_generation(generation_);
  for (size_t i = 0; i < count; ++i) {
    Record& record = records_[not_handed_out_.front()];
    not_handed_out_.pop_front();
    record.handed_out = true;
    ++pending_;
    FillStimulus(record, /*with_image=*/true, batch->add_stimuli());
  }
  batch->set_remaining(static_cast<int32_t>(not_handed_out_.size()));
  return absl::OkStatus();
}

absl::Status Session::TellChanges(std::vector<size_t>* told, std::string* before) {
  std::vector<Observation> observations;
  for (size_t i = 0; i < records_.size(); ++i) {
    const Record& r = records_[i];
    if (!r.proposed_by_optimizer() || r.presentations == r.told_presentations) continue;
    observations.push_back({r.entry.sequence, r.mean_objective(), r.presentations});
    told->push_back(i);
  }
  *before = SaveOptimizerState(*optimizer_);
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

absl::Status Session::ProposeGeneration() {
  // Tell and Ask change the optimizer; its state before them undoes both if
  // anything after fails, so a failed request leaves the session unchanged.
  std::vector<size_t> told;
  std::string before;
  if (absl::Status s = TellChanges(&told, &before); !s.ok()) return s;
  auto undo = [&](absl::Status status) { return UndoOptimizer(before, std::move(status)); };
  const int64_t generation = generation_ + 1;
  const int64_t first_id = static_cast<int64_t>(records_.size()) + 1;
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

  // The extras - reference images, then repeats of the leading images
  // (their PNG is the source's, copied below) - interleaved evenly among the
  // optimizer's candidates.
  std::vector<Candidate> extras = ReferenceCandidates(generation, first_id + optimizer_count);
  absl::flat_hash_map<int64_t, size_t> repeat_source;  // candidate id -> record
  for (size_t source : RepeatSources()) {
    Candidate c;
    c.id = first_id + optimizer_count + static_cast<int64_t>(extras.size());
    c.origin = kRepeatOrigin;
    repeat_source[c.id] = source;
    extras.push_back(std::move(c));
  }
  std::vector<Candidate> all;
  all.reserve(candidates->size() + extras.size());
  const size_t total = candidates->size() + extras.size();
  size_t next_candidate = 0, next_extra = 0;
  for (size_t slot = 0; slot < total; ++slot) {
    const bool extra_slot = next_extra < extras.size() &&
                            slot >= (2 * next_extra + 1) * total / (2 * extras.size());
    all.push_back(std::move(extra_slot ? extras[next_extra++] : (*candidates)[next_candidate++]));
  }

  // Entries in hand-out order; each keeps its candidate's id as sequence.
  std::vector<StimulusEntry> entries;
  entries.reserve(all.size());
  for (Candidate& c : all) {
    StimulusEntry e;
    e.sequence = c.id;
    e.id = absl::StrCat(id_, "-", e.sequence);
    e.generation = generation;
    e.origin = c.origin;
    e.is_reference = c.origin == "reference";
    if (auto source = repeat_source.find(c.id); source != repeat_source.end()) {
      // The very bytes shown before, so the presentations pool.
      const StimulusEntry& shown = records_[source->second].entry;
      e.png = shown.png;
      e.code = shown.code;
      e.model_version = shown.model_version;
      e.predicted_objective = shown.predicted_objective;
      entries.push_back(std::move(e));
      continue;
    }
    auto png = EncodePng(ToUint8(c.image));
    if (!png.ok()) return undo(png.status());
    e.png = *std::move(png);
    if (c.code.defined()) {
      torch::Tensor code = c.code.to(torch::kFloat).contiguous();
      e.code.assign(code.data_ptr<float>(), code.data_ptr<float>() + code.numel());
    }
    e.model_version = c.model_version;
    e.predicted_objective = c.predicted_objective;
    entries.push_back(std::move(e));
  }
  for (size_t i = 0; i < candidates->size(); ++i) {
    if ((*candidates)[i].id != first_id + static_cast<int64_t>(i)) {
      return undo(absl::InternalError(
          absl::StrCat("optimizer returned id ", (*candidates)[i].id, " at position ", i,
                       ", expected ", first_id + static_cast<int64_t>(i))));
    }
  }

  if (absl::Status s = journal_->GenerationProposed(id_, generation, entries,
                                                    SaveOptimizerState(*optimizer_), responses_);
      !s.ok()) {
    return undo(s);
  }
  CommitGeneration(generation, std::move(entries), told);
  return absl::OkStatus();
}

void Session::CommitGeneration(int64_t generation, std::vector<StimulusEntry> entries,
                               const std::vector<size_t>& told) {
  for (size_t i : told) records_[i].told_presentations = records_[i].presentations;
  // The boundary's refit, on everything measured so far (also after a
  // validation block, where no Ask happened).
  if (refits_ != nullptr) refits_->AfterAsk(generation);
  generation_ = generation;
  const size_t first_new = records_.size();
  records_.resize(records_.size() + entries.size());
  for (StimulusEntry& e : entries) {
    const size_t index = static_cast<size_t>(e.sequence - 1);
    not_handed_out_.push_back(index);
    records_[index].entry = std::move(e);
  }
  for (size_t i = first_new; i < records_.size(); ++i) IndexImage(i);
  StartProposalAhead();
}

void Session::StartProposalAhead() {
  if (!propose_ahead_ || closed_ || ahead_running_) return;
  // The previous thread released the lock for the last time: it is
  // finishing or done.
  if (ahead_thread_.joinable()) ahead_thread_.join();
  ahead_running_ = true;
  ahead_thread_ = std::thread(&Session::ProposeAhead, this, optimizer_.get(), generation_ + 1,
                              config_.proto.generation_size(),
                              static_cast<int64_t>(records_.size()) + 1);
}

void Session::ProposeAhead(Optimizer* optimizer, int64_t generation, int count,
                           int64_t first_id) {
  // Runs without the session lock: while ahead_running_, nothing else
  // touches the optimizer (see "Proposing ahead" in session.h). Yields the
  // CPU to the threads that answer the rig.
  LowerThisThreadPriority();
  if (refits_ != nullptr) refits_->BeforeAsk(generation);
  absl::Status prepared;
  try {
    prepared = optimizer->PrepareAsk(count, first_id);
  } catch (const std::exception& e) {  // e.g. LibTorch out of memory: never terminate
    prepared = absl::InternalError(absl::StrCat("optimizer PrepareAsk failed: ", e.what()));
  }
  // Nothing to undo: PrepareAsk leaves the optimizer's state as it was, and
  // the boundary asks from scratch (and reports the error if it persists).
  // CANCELLED is the session shutting down (~Session), not news.
  if (!prepared.ok() && !absl::IsCancelled(prepared)) {
    std::cerr << "session " << id_ << ": background Ask failed: " << prepared << "\n";
  }
  absl::MutexLock lock(&mu_);
  ahead_running_ = false;
}

std::vector<Candidate> Session::ReferenceCandidates(int64_t generation, int64_t first_id) const {
  std::vector<Candidate> out;
  const int per_generation = config_.proto.reference_images().per_generation();
  if (references_.empty() || per_generation == 0) return out;
  for (int j = 0; j < per_generation; ++j) {
    const NamedImage& image =
        references_[((generation - 1) * per_generation + j) % references_.size()];
    Candidate c;
    c.id = first_id + j;
    c.image = image.image;
    c.origin = "reference";
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<size_t> Session::FindRecord(const std::string& stimulus_id,
                                           const std::string& field) const {
  absl::string_view sequence_digits = stimulus_id;
  const int64_t sequence = absl::ConsumePrefix(&sequence_digits, absl::StrCat(id_, "-"))
                               ? ParseSequence(sequence_digits)
                               : 0;
  if (sequence < 1 || sequence > static_cast<int64_t>(records_.size())) {
    return absl::NotFoundError(
        absl::StrCat(field, ": ", QuotedEcho(stimulus_id), " is not a stimulus of session '", id_,
                     "'"));
  }
  return static_cast<size_t>(sequence - 1);
}

absl::Status CheckRates(absl::Span<const double> rates, absl::string_view field) {
  for (size_t n = 0; n < rates.size(); ++n) {
    const double rate = rates[n];
    if (!std::isfinite(rate) || rate < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", n, "]: ", rate, " must be finite and non-negative"));
    }
    if (rate > kMaxRate) {
      // All digits: a rate just above the maximum must not print as it.
      return absl::InvalidArgumentError(absl::StrCat(field, "[", n, "]: ",
                                                     absl::StrFormat("%.17g", rate),
                                                     " is above the maximum rate ", kMaxRate));
    }
  }
  return absl::OkStatus();
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
  if (responses.empty() || responses.size() > kMaxResponsesPerReport) {
    return absl::InvalidArgumentError(absl::StrCat("responses: ", responses.size(),
                                                   " responses, expected 1..",
                                                   kMaxResponsesPerReport));
  }
  const int num_neurons = config_.proto.num_neurons();
  entries->reserve(responses.size());
  indices->reserve(responses.size());
  for (int i = 0; i < responses.size(); ++i) {
    const v1::Response& response = responses[i];
    const std::string field = absl::StrCat("responses[", i, "]");
    auto index = FindRecord(response.stimulus_id(), absl::StrCat(field, ".stimulus_id"));
    if (!index.ok()) return index.status();
    if (!records_[*index].handed_out) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ".stimulus_id: ", QuotedEcho(response.stimulus_id()),
                       " has not been handed out by NextStimuli yet"));
    }
    if (response.skipped()) {
      if (response.rates_size() != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".rates: a skipped response carries no rates, got ",
                         response.rates_size()));
      }
    } else {
      if (response.rates_size() != num_neurons) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".rates: has ",
                                                       response.rates_size(),
                                                       " values, expected num_neurons = ",
                                                       num_neurons));
      }
      const absl::Span<const double> rates(response.rates().data(), response.rates_size());
      if (absl::Status s = CheckRates(rates, absl::StrCat(field, ".rates")); !s.ok()) return s;
    }
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
  if (request_id.empty() || request_id.size() > kMaxRequestIdLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request_id: must be 1..", kMaxRequestIdLength, " characters, got ", request_id.size()));
  }
  // A retry is answered even once the session is closed: the rig whose
  // acknowledgement was lost learns that its data is stored.
  if (auto it = acks_.find(request_id); it != acks_.end()) {
    return AnswerRetry(it->second, request_id, responses, ack);
  }
  if (closed_) {
    return absl::FailedPreconditionError(absl::StrCat("session_id: '", id_, "' is closed"));
  }

  // Validate everything before changing anything.
  std::vector<ResponseEntry> entries;
  std::vector<size_t> indices;
  if (absl::Status s = CheckResponses(responses, &entries, &indices); !s.ok()) return s;
  auto digest = ReportDigest(entries);
  if (!digest.ok()) return digest.status();

  // The counts after this report, acknowledged only once it is committed.
  v1::SessionCounts counts = Counts();
  absl::flat_hash_set<size_t> answered;
  for (size_t k = 0; k < entries.size(); ++k) {
    const Record& r = records_[indices[k]];
    if (r.presentations == 0 && r.skipped == 0) answered.insert(indices[k]);
    if (entries[k].skipped) {
      counts.set_skipped(counts.skipped() + 1);
    } else {
      counts.set_responses(counts.responses() + 1);
    }
  }
  counts.set_pending(counts.pending() - static_cast<int64_t>(answered.size()));
  v1::ReportResponsesAck new_ack;
  new_ack.set_accepted(static_cast<int32_t>(entries.size()));
  *new_ack.mutable_counts() = counts;

  // The surrogate learns from the 8-bit images shown (decoded before the
  // commit, so a failure changes nothing).
  std::vector<torch::Tensor> shown;
  if (refits_ != nullptr) {
    for (size_t k = 0; k < entries.size(); ++k) {
      if (entries[k].skipped) continue;
      auto image = DecodeImage(records_[indices[k]].entry.png);
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
    Record& r = records_[indices[k]];
    if (entries[k].skipped) {
      ++r.skipped;
      ++skipped_;
    } else {
      r.AddPresentation(entries[k].rates, objective_->Evaluate(entries[k].rates));
      ++responses_;
    }
  }
  pending_ -= static_cast<int64_t>(answered.size());
  acks_.emplace(request_id, StoredAck{new_ack, *std::move(digest)});
  if (refits_ != nullptr) {
    size_t next_shown = 0;
    for (size_t k = 0; k < entries.size(); ++k) {
      if (entries[k].skipped) continue;
      // Cannot fail: every stimulus has the session's shape and neuron count.
      absl::Status appended =
          refits_->Append(shown[next_shown++], entries[k].rates, ImageId(indices[k]));
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

v1::SessionCounts Session::Counts() const {
  v1::SessionCounts counts;
  counts.set_generations(generation_);
  counts.set_stimuli(static_cast<int64_t>(records_.size()));
  counts.set_responses(responses_);
  counts.set_skipped(skipped_);
  counts.set_pending(pending_);
  return counts;
}

void Session::FillStimulus(const Record& record, bool with_image, v1::Stimulus* out) const {
  const StimulusEntry& e = record.entry;
  out->set_id(e.id);
  out->set_generation(e.generation);
  out->set_origin(e.origin);
  if (with_image) out->set_png(e.png);
  out->set_model_version(e.model_version);
  out->set_is_reference(e.is_reference);
  out->set_predicted_objective(e.predicted_objective);
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
    *out->mutable_counts() = Counts();

    if (const std::optional<PooledImage> best = BestMeasured(); best.has_value()) {
      v1::ScoredStimulus* scored = out->mutable_best_measured();
      FillStimulus(records_[best->records.front()], with_images, scored->mutable_stimulus());
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
