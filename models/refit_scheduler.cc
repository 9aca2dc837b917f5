#include "models/refit_scheduler.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "models/thread_priority.h"
#include <ATen/Parallel.h>

namespace stimloop {
namespace {

// Reads and erases `key`; the default when absent. Writes the first problem
// to `error`.
double TakeParam(std::map<std::string, double>* params, const std::string& key,
                 double default_value, double min, double max, bool whole,
                 absl::Status* error) {
  auto it = params->find(key);
  if (it == params->end()) return default_value;
  const double value = it->second;
  params->erase(it);
  if (!std::isfinite(value) || value < min || value > max ||
      (whole && value != std::floor(value))) {
    if (error->ok()) {
      *error = absl::InvalidArgumentError(absl::StrCat(
          "surrogate.params.", key, ": ", value, " must be ", whole ? "a whole number " : "",
          "in [", min, ", ", max, "]"));
    }
    return default_value;
  }
  return value;
}

}  // namespace

absl::StatusOr<RefitOptions> ParseRefitOptions(std::map<std::string, double>* params) {
  absl::Status error;
  RefitOptions options;
  options.refit_every =
      static_cast<int64_t>(TakeParam(params, "refit_every", 1, 1, 1e9, true, &error));
  options.sync = TakeParam(params, "refit_sync", 0, 0, 1, true, &error) != 0;
  options.lag = static_cast<int>(TakeParam(params, "refit_lag", 1, 0, 1, true, &error));
  options.cancel_superseded = TakeParam(params, "refit_cancel", 0, 0, 1, true, &error) != 0;
  if (!error.ok()) return error;
  return options;
}

RefitScheduler::RefitScheduler(RefitOptions options, FitFunction fit, VersionCallback on_version)
    : options_(options), fit_(std::move(fit)), on_version_(std::move(on_version)) {
  worker_ = std::thread([this] { WorkerLoop(); });
}

RefitScheduler::~RefitScheduler() {
  Stop();
  worker_.join();
}

void RefitScheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    pending_.reset();
    cancel_ = true;
  }
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

bool RefitScheduler::RequestRefit() {
  bool requested = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t n = static_cast<int64_t>(images_.size());
    if (!stopping_ && n > 0 && n - requested_examples_ >= options_.refit_every) {
      requested_examples_ = n;
      pending_ = n;  // replaces (folds in) an older waiting request
      if (running_ && options_.cancel_superseded) cancel_ = true;
      requested = true;
    }
  }
  if (requested) cv_.notify_all();
  return requested;
}

absl::Status RefitScheduler::Resume(std::shared_ptr<const ResponseModel> latest,
                                    int64_t versions, int64_t fitted_examples,
                                    int64_t boundary_examples) {
  bool requested = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t n = static_cast<int64_t>(images_.size());
    if (versions < 0 || (versions > 0) != (latest != nullptr) ||
        (latest != nullptr && latest->version() != versions) || fitted_examples < 0 ||
        boundary_examples < 0 || fitted_examples > n || boundary_examples > n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refit resume: version ", versions, " fitted on ", fitted_examples,
          " examples with ", boundary_examples, " at the last generation does not fit the ", n,
          " examples journaled"));
    }
    finished_versions_ = versions;
    requested_examples_ = fitted_examples;
    const bool after_ask_requests = !(options_.sync && options_.lag == 0);
    if (after_ask_requests && boundary_examples > 0 &&
        boundary_examples - fitted_examples >= options_.refit_every) {
      requested_examples_ = boundary_examples;
      pending_ = boundary_examples;
      requested = true;
    }
  }
  {
    std::lock_guard<std::mutex> lock(latest_mu_);
    latest_ = std::move(latest);
  }
  if (requested) cv_.notify_all();
  return absl::OkStatus();
}

void RefitScheduler::BeforeAsk() {
  if (!options_.sync) return;
  if (options_.lag == 0) RequestRefit();
  WaitIdle();
}

bool RefitScheduler::AfterAsk() {
  if (options_.sync && options_.lag == 0) return false;
  return RequestRefit();
}

void RefitScheduler::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return (!running_ && !pending_.has_value()) || stopping_; });
}

std::shared_ptr<const ResponseModel> RefitScheduler::Latest() const {
  std::lock_guard<std::mutex> lock(latest_mu_);
  return latest_;
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

void RefitScheduler::WorkerLoop() {
  // Fits on this thread use the process-wide intra-op thread count, and
  // yield the CPU to the threads that answer the rig.
  at::init_num_threads();
  LowerThisThreadPriority();
  for (;;) {
    int64_t n = 0;
    int64_t version = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || pending_.has_value(); });
      if (stopping_) return;
      n = *pending_;
      pending_.reset();
      running_ = true;
      cancel_ = false;
      version = finished_versions_ + 1;
      ++fits_started_;
    }
    absl::StatusOr<FitOutcome> outcome = fit_(Snapshot(n), version, cancel_);
    // A fit that finished is a valid version even if superseded meanwhile.
    const bool cancelled = !outcome.ok() && cancel_.load();
    if (outcome.ok()) {
      if (outcome->model == nullptr || outcome->model->version() != version) {
        outcome = absl::InternalError(absl::StrCat(
            "refit: the fit function returned ", outcome->model == nullptr ? "no model" : "a model",
            " for version ", version,
            outcome->model == nullptr ? "" : absl::StrCat(" numbered ", outcome->model->version())));
      } else {
        if (on_version_) on_version_(version, outcome->metrics, outcome->checkpoint);
        std::lock_guard<std::mutex> lock(latest_mu_);
        latest_ = outcome->model;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
      if (cancelled) {
        ++fits_cancelled_;
      } else if (outcome.ok()) {
        finished_versions_ = version;
      } else {
        last_error_ = outcome.status();
      }
    }
    cv_.notify_all();
  }
}

}  // namespace stimloop
