#include "models/refit_scheduler.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include <ATen/Parallel.h>

namespace stimloop {
absl::Status CheckNoRemovedRefitParams(const std::map<std::string, double>& params) {
  for (const char* removed : kRemovedRefitParams) {
    if (params.count(removed) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "surrogate.params.", removed,
          ": no longer exists: every session proposes generation g from the model fitted at "
          "the boundary of generation g - refit_lag, so runs replay exactly and the rig waits "
          "only for a fit that is late; set refit_lag instead"));
    }
  }
  return absl::OkStatus();
}

RefitOptions ReadRefitOptions(ParamReader& reader) {
  RefitOptions options;
  options.refit_every = reader.GetInt("refit_every", options.refit_every, 1, 1000000000);
  options.lag = static_cast<int>(reader.GetInt("refit_lag", options.lag, 0, kMaxRefitLag));
  return options;
}

RefitScheduler::RefitScheduler(RefitOptions options, FitFunction fit, VersionCallback on_version,
                               WorkPool* pool)
    : options_(options), fit_(std::move(fit)), on_version_(std::move(on_version)) {
  if (pool == nullptr) {
    own_pool_ = std::make_unique<WorkPool>(1);
    pool = own_pool_.get();
  }
  strand_ = std::make_unique<Strand>(pool);
}

RefitScheduler::~RefitScheduler() {
  Stop();
  strand_.reset();  // waits for a running fit; before the members it uses go
}

void RefitScheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cancel_ = true;
  }
  strand_->Cancel();
  cv_.notify_all();
}

absl::Status RefitScheduler::Append(const torch::Tensor& image, absl::Span<const double> rates,
                                    int64_t stimulus_id) {
  if (!image.defined() || image.dim() != 3) {
    return absl::InvalidArgumentError("training image: must be a [C, H, W] tensor");
  }
  torch::Tensor u8 = image.scalar_type() == torch::kUInt8
                         ? image.contiguous()
                         : torch::round(image.detach().to(torch::kFloat).clamp(0, 1) * 255)
                               .to(torch::kUInt8)
                               .contiguous();
  std::vector<float> r(rates.begin(), rates.end());
  std::lock_guard<std::mutex> lock(mu_);
  if (!images_.empty()) {
    if (u8.sizes() != images_.front().sizes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("training image: shape ", c10::str(u8.sizes()), " differs from ",
                       c10::str(images_.front().sizes())));
    }
    if (r.size() != rates_.front().size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "training rates: ", r.size(), " values, expected ", rates_.front().size()));
    }
  }
  images_.push_back(std::move(u8));
  rates_.push_back(std::move(r));
  stimulus_ids_.push_back(stimulus_id);
  return absl::OkStatus();
}

bool RefitScheduler::RequestLocked(int64_t boundary) {
  return RequestLocked(boundary, static_cast<int64_t>(images_.size()));
}

bool RefitScheduler::RequestLocked(int64_t boundary, int64_t n) {
  const int64_t last = requests_.empty() ? 0 : requests_.back().examples;
  if (stopping_ || n == 0 || n - last < options_.refit_every) return false;
  requests_.push_back({boundary, n, 0});
  strand_->Post([this] { RunNextFit(); });
  return true;
}

bool RefitScheduler::AfterAsk(int64_t generation) {
  bool requested;
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested = RequestLocked(generation);
  }
  if (requested) cv_.notify_all();
  return requested;
}

void RefitScheduler::BeforeAsk(int64_t generation) {
  std::unique_lock<std::mutex> lock(mu_);
  if (options_.lag == 0 && RequestLocked(generation)) cv_.notify_all();
  // The fit assigned to this generation: the newest request made at a
  // boundary <= generation - lag.
  size_t assigned = requests_.size();
  while (assigned > 0 && requests_[assigned - 1].boundary > generation - options_.lag) {
    --assigned;
  }
  if (assigned == 0) return;  // no request yet: no model
  HelpUntil(lock, [&] { return done_ >= assigned; });
  if (done_ < assigned) return;  // stopping: the Ask is about to be cancelled
  // The newest version fitted on a request up to it (failed fits have none).
  for (size_t i = assigned; i > 0; --i) {
    const int64_t version = requests_[i - 1].version;
    if (version == 0) continue;
    auto it = models_.find(version);
    if (it == models_.end()) break;  // older than an earlier assignment: keep that
    assigned_ = it->second;
    models_.erase(models_.begin(), it);  // no later generation goes back to these
    break;
  }
}

void RefitScheduler::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  HelpUntil(lock, [this] { return done_ == requests_.size(); });
}

void RefitScheduler::HelpUntil(std::unique_lock<std::mutex>& lock,
                               const std::function<bool()>& done) {
  while (!done() && !stopping_) {
    const size_t seen = done_;
    lock.unlock();
    const bool ran = strand_->RunOneInline();
    lock.lock();
    // None ran here: one runs elsewhere (or is about to); wait for a fit to
    // finish, then look again (the next may be queued and free by then).
    if (!ran) cv_.wait(lock, [&] { return done_ != seen || stopping_; });
  }
}

absl::Status RefitScheduler::Resume(absl::Span<const int64_t> boundary_examples,
                                    std::vector<FittedVersion> fitted) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t n = static_cast<int64_t>(images_.size());
    int64_t previous = 0;
    for (size_t b = 0; b < boundary_examples.size(); ++b) {
      const int64_t examples = boundary_examples[b];
      if (examples < previous || examples > n) {
        return absl::InvalidArgumentError(absl::StrCat(
            "refit resume: generation ", b + 1, " was committed at ", examples,
            " examples, after ", previous, " at the generation before, of ", n, " journaled"));
      }
      previous = examples;
      RequestLocked(static_cast<int64_t>(b) + 1, examples);
    }
    // The newest journaled version, and the request the last generation
    // waited for, are done; so is every request before them.
    size_t done = 0;
    for (const FittedVersion& f : fitted) {
      auto it = std::find_if(requests_.begin(), requests_.end(),
                             [&](const Request& r) { return r.examples == f.examples; });
      if (it == requests_.end() || f.model == nullptr || f.model->version() != f.version ||
          f.version <= versions_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "refit resume: model version ", f.version, " fitted on ", f.examples,
            " examples matches no refit request (or is out of order)"));
      }
      it->version = f.version;
      versions_ = f.version;
      models_[f.version] = f.model;
      done = std::max(done, static_cast<size_t>(it - requests_.begin()) + 1);
    }
    const int64_t last_generation = static_cast<int64_t>(boundary_examples.size());
    for (size_t i = requests_.size(); i > done; --i) {
      if (requests_[i - 1].boundary <= last_generation - options_.lag) {
        done = i;
        break;
      }
    }
    done_ = next_to_run_ = done;
  }
  cv_.notify_all();
  return absl::OkStatus();
}

std::shared_ptr<const ResponseModel> RefitScheduler::Latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return assigned_;
}

std::shared_ptr<const ResponseModel> RefitScheduler::Newest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return models_.empty() ? assigned_ : models_.rbegin()->second;
}

int64_t RefitScheduler::num_examples() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(images_.size());
}

int64_t RefitScheduler::fits_started() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fits_started_;
}

int64_t RefitScheduler::fits_cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fits_cancelled_;
}

absl::Status RefitScheduler::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

RefitData RefitScheduler::Snapshot(int64_t n) const {
  std::vector<torch::Tensor> images;
  std::vector<float> rates;
  RefitData data;
  int64_t neurons = 0;
  {
    // Copies tensor handles and rates only; the stacking happens unlocked.
    std::lock_guard<std::mutex> lock(mu_);
    images.assign(images_.begin(), images_.begin() + n);
    data.stimulus_ids.assign(stimulus_ids_.begin(), stimulus_ids_.begin() + n);
    if (!models_.empty()) data.previous = models_.rbegin()->second;
    neurons = static_cast<int64_t>(rates_.front().size());
    rates.reserve(static_cast<size_t>(n * neurons));
    for (int64_t i = 0; i < n; ++i) {
      rates.insert(rates.end(), rates_[i].begin(), rates_[i].end());
    }
  }
  data.images = torch::stack(images).to(torch::kFloat) / 255.0;
  data.rates = torch::from_blob(rates.data(), {n, neurons}, torch::kFloat).clone();
  return data;
}

void RefitScheduler::RunNextFit() {
  // Fits use the process-wide intra-op thread count (a pool thread yields
  // the CPU to the threads that answer the rig: base/work_pool.h).
  at::init_num_threads();
  size_t index = 0;
  int64_t n = 0;
  int64_t version = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || next_to_run_ >= requests_.size()) return;
    index = next_to_run_++;
    n = requests_[index].examples;
    version = versions_ + 1;
    ++fits_started_;
  }
  absl::StatusOr<FitOutcome> outcome = absl::InternalError("refit: not run");
  try {
    outcome = fit_(Snapshot(n), version, cancel_);
  } catch (const std::exception& e) {  // e.g. LibTorch out of memory: a failed fit, no crash
    outcome = absl::InternalError(absl::StrCat("refit: the fit threw: ", e.what()));
  }
  if (outcome.ok() && (outcome->model == nullptr || outcome->model->version() != version)) {
    outcome = absl::InternalError(absl::StrCat(
        "refit: the fit function returned ", outcome->model == nullptr ? "no model" : "a model",
        " for version ", version,
        outcome->model == nullptr ? "" : absl::StrCat(" numbered ", outcome->model->version())));
  }
  // A fit that finished is a valid version even if Stop() came meanwhile.
  if (outcome.ok() && on_version_) on_version_(version, outcome->metrics, outcome->checkpoint);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (outcome.ok()) {
      requests_[index].version = version;
      versions_ = version;
      models_[version] = outcome->model;
    } else if (cancel_.load()) {
      ++fits_cancelled_;
    } else {
      last_error_ = outcome.status();
    }
    done_ = index + 1;
  }
  cv_.notify_all();
}

}  // namespace stimloop
