#include "optimizers/portfolio.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "optimizers/cmaes.h"
#include "optimizers/gradient_ascent.h"
#include "optimizers/optimizer_state.h"
#include "base/params.h"
#include "optimizers/proposals.h"
#include <torch/serialize/archive.h>

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.portfolio/1";
constexpr char kModelBased[] = "gradient_ascent";
constexpr char kModelFree[] = "cmaes";

// A source's candidates at or above the generation's top-quartile cut, and
// how many it had answered.
struct Hits {
  double hits = 0;
  double answered = 0;
};

}  // namespace

Portfolio::Portfolio(std::unique_ptr<Optimizer> model_based, std::unique_ptr<Optimizer> model_free,
                     const PortfolioParams& params)
    : model_based_(std::move(model_based)),
      model_free_(std::move(model_free)),
      params_(params),
      share_(std::clamp(params.initial_share, params.min_share, params.max_share)) {}

int Portfolio::ModelCount(int count) const {
  if (count <= 1) return share_ >= 0.5 ? count : 0;
  const int n = static_cast<int>(std::lround(share_ * count));
  return std::clamp(n, 1, count - 1);
}

absl::Status Portfolio::PrepareAsk(int count, int64_t first_id) {
  const int model = ModelCount(count);
  if (model == 0) return absl::OkStatus();
  return model_based_->PrepareAsk(model, first_id);
}

void Portfolio::CancelAsks() {
  model_based_->CancelAsks();
  model_free_->CancelAsks();
}

absl::StatusOr<std::vector<Candidate>> Portfolio::Ask(int count, int64_t first_id) {
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("count: ", count, " must be positive"));
  }
  const int model = ModelCount(count);
  std::vector<Candidate> candidates;
  candidates.reserve(count);
  if (model > 0) {
    absl::StatusOr<std::vector<Candidate>> part = model_based_->Ask(model, first_id);
    if (!part.ok()) return part.status();
    for (Candidate& c : *part) candidates.push_back(std::move(c));
  }
  if (count - model > 0) {
    absl::StatusOr<std::vector<Candidate>> part = model_free_->Ask(count - model, first_id + model);
    if (!part.ok()) return part.status();
    for (Candidate& c : *part) candidates.push_back(std::move(c));
  }
  splits_.push_back({first_id, count, model});
  window_.push_back(std::vector<double>(count, std::numeric_limits<double>::quiet_NaN()));
  while (static_cast<int64_t>(window_.size()) > params_.window + 1) window_.pop_front();
  share_ = ComputeShare();
  return candidates;
}

const Portfolio::Split* Portfolio::FindSplit(int64_t id) const {
  auto it = std::upper_bound(splits_.begin(), splits_.end(), id,
                             [](int64_t v, const Split& s) { return v < s.first_id; });
  if (it == splits_.begin()) return nullptr;
  --it;
  return id < it->first_id + it->count ? &*it : nullptr;
}

absl::Status Portfolio::Tell(absl::Span<const Observation> observations) {
  std::vector<Observation> to_model, to_free;
  for (size_t i = 0; i < observations.size(); ++i) {
    const Observation& o = observations[i];
    const Split* split = FindSplit(o.id);
    if (split == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("observations[", i, "].id: ", o.id, " was never proposed by portfolio"));
    }
    (o.id - split->first_id < split->model ? to_model : to_free).push_back(o);
  }
  // Each source checks its own (ids, finite values) before either changes.
  const std::string model_before = SaveOptimizerState(*model_based_);
  if (absl::Status s = model_based_->Tell(to_model); !s.ok()) return s;
  if (absl::Status s = model_free_->Tell(to_free); !s.ok()) {
    if (absl::Status undo = LoadOptimizerState(*model_based_, model_before); !undo.ok()) {
      return undo;
    }
    return s;
  }
  for (const Observation& o : observations) {
    for (size_t i = 0; i < window_.size(); ++i) {
      const int64_t row = o.id - WindowSplit(i).first_id;
      if (row >= 0 && row < WindowSplit(i).count) window_[i][row] = o.objective;
    }
  }
  return absl::OkStatus();
}

double Portfolio::ComputeShare() const {
  Hits model, free;
  bool any = false;
  for (size_t i = 0; i < window_.size(); ++i) {
    const Split& split = WindowSplit(i);
    const std::vector<double>& objectives = window_[i];
    std::vector<double> answered;
    for (double v : objectives) {
      if (!std::isnan(v)) answered.push_back(v);
    }
    if (answered.empty()) continue;
    std::sort(answered.begin(), answered.end(), std::greater<double>());
    const size_t k = (answered.size() + 3) / 4;  // ceil(n / 4)
    const double cut = answered[k - 1];
    Hits gm, gf;
    for (int64_t row = 0; row < split.count; ++row) {
      const double v = objectives[row];
      if (std::isnan(v)) continue;
      Hits& h = row < split.model ? gm : gf;
      h.answered += 1;
      if (v >= cut) h.hits += 1;
    }
    model.hits += gm.hits;
    model.answered += gm.answered;
    free.hits += gf.hits;
    free.answered += gf.answered;
    any = true;
  }
  if (!any) return share_;
  const double rate_model = (model.hits + 1) / (model.answered + 4);
  const double rate_free = (free.hits + 1) / (free.answered + 4);
  return std::clamp(rate_model / (rate_model + rate_free), params_.min_share, params_.max_share);
}

void Portfolio::Save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("share", c10::IValue(share_));
  torch::Tensor splits = torch::empty({static_cast<int64_t>(splits_.size()), 3}, torch::kLong);
  for (size_t i = 0; i < splits_.size(); ++i) {
    splits[i][0] = splits_[i].first_id;
    splits[i][1] = splits_[i].count;
    splits[i][2] = splits_[i].model;
  }
  archive.write("splits", splits);
  std::vector<double> objectives;
  for (const std::vector<double>& generation : window_) {
    objectives.insert(objectives.end(), generation.begin(), generation.end());
  }
  archive.write("window.size", c10::IValue(static_cast<int64_t>(window_.size())));
  archive.write("window.objectives",
                torch::tensor(objectives, torch::kDouble).reshape({-1}));
  torch::serialize::OutputArchive model_based, model_free;
  model_based_->Save(model_based);
  model_free_->Save(model_free);
  archive.write(kModelBased, model_based);
  archive.write(kModelFree, model_free);
}

absl::Status Portfolio::Load(torch::serialize::InputArchive& archive) {
  if (absl::Status s = CheckFormat(archive, kFormat); !s.ok()) return s;
  absl::StatusOr<double> share = ReadDouble(archive, "share");
  if (!share.ok()) return share.status();
  absl::StatusOr<torch::Tensor> splits_tensor = ReadTensor(archive, "splits");
  if (!splits_tensor.ok()) return splits_tensor.status();
  absl::StatusOr<int64_t> window_size = ReadInt(archive, "window.size");
  if (!window_size.ok()) return window_size.status();
  absl::StatusOr<torch::Tensor> objectives = ReadTensor(archive, "window.objectives");
  if (!objectives.ok()) return objectives.status();
  const torch::Tensor& t = *splits_tensor;
  if (t.dim() != 2 || t.size(1) != 3 || t.scalar_type() != torch::kLong || *window_size < 0 ||
      *window_size > t.size(0) || objectives->dim() != 1 ||
      objectives->scalar_type() != torch::kDouble) {
    return absl::DataLossError("optimizer state: portfolio splits or window are malformed");
  }
  std::vector<Split> splits;
  for (int64_t i = 0; i < t.size(0); ++i) {
    const Split s{t[i][0].item<int64_t>(), t[i][1].item<int64_t>(), t[i][2].item<int64_t>()};
    if (s.count < 1 || s.model < 0 || s.model > s.count ||
        (!splits.empty() && s.first_id < splits.back().first_id + splits.back().count)) {
      return absl::DataLossError(absl::StrCat("optimizer state: portfolio split ", i,
                                              " is malformed"));
    }
    splits.push_back(s);
  }
  const torch::Tensor flat = objectives->contiguous();
  std::deque<std::vector<double>> window;
  int64_t offset = 0;
  for (int64_t i = static_cast<int64_t>(splits.size()) - *window_size;
       i < static_cast<int64_t>(splits.size()); ++i) {
    if (offset + splits[i].count > flat.size(0)) {
      return absl::DataLossError("optimizer state: portfolio window is short");
    }
    const double* values = flat.data_ptr<double>() + offset;
    window.emplace_back(values, values + splits[i].count);
    offset += splits[i].count;
  }
  torch::serialize::InputArchive model_based, model_free;
  if (!archive.try_read(kModelBased, model_based) || !archive.try_read(kModelFree, model_free)) {
    return absl::DataLossError("optimizer state: portfolio lacks a source's state");
  }
  const std::string model_before = SaveOptimizerState(*model_based_);
  if (absl::Status s = model_based_->Load(model_based); !s.ok()) return s;
  if (absl::Status s = model_free_->Load(model_free); !s.ok()) {
    if (absl::Status undo = LoadOptimizerState(*model_based_, model_before); !undo.ok()) {
      return undo;
    }
    return s;
  }
  share_ = *share;
  splits_ = std::move(splits);
  window_ = std::move(window);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Optimizer>> MakePortfolio(const OptimizerSpec& spec,
                                                         const OptimizerContext& context) {
  // The sources' keys go to them, named as the config names them.
  OptimizerSpec model_spec{kModelBased, {}, ""}, free_spec{kModelFree, {}, ""};
  std::map<std::string, double> own;
  for (const auto& [key, value] : spec.params) {
    if (absl::StartsWith(key, absl::StrCat(kModelBased, "."))) {
      model_spec.params[key.substr(sizeof(kModelBased))] = value;
    } else if (absl::StartsWith(key, absl::StrCat(kModelFree, "."))) {
      free_spec.params[key.substr(sizeof(kModelFree))] = value;
    } else {
      own[key] = value;
    }
  }
  ParamReader p(own, "optimizer.params");
  PortfolioParams params;
  params.initial_share = p.Get("initial_share", 0.5, 0, 1);
  params.min_share = p.Get("min_share", 0.25, 0, 1);
  params.max_share = p.Get("max_share", 0.75, 0, 1);
  params.window = p.GetInt("window", 3, 1, 100);
  if (absl::Status s = p.Finish(); !s.ok()) return s;
  if (params.max_share < params.min_share) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer.params.max_share: ",
                                                   params.max_share, " is below min_share ",
                                                   params.min_share));
  }
  auto named = [](const char* source, const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrReplaceAll(status.message(),
                                            {{"optimizer.params.",
                                              absl::StrCat("optimizer.params.", source, ".")}}));
  };
  auto model_based = MakeOptimizer(model_spec, context);
  if (!model_based.ok()) return named(kModelBased, model_based.status());
  auto model_free = MakeOptimizer(free_spec, context);
  if (!model_free.ok()) return named(kModelFree, model_free.status());
  return std::make_unique<Portfolio>(*std::move(model_based), *std::move(model_free), params);
}

}  // namespace stimloop
