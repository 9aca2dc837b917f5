#include "optimizers/genetic.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/params.h"
#include <torch/serialize/archive.h>

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.genetic/1";

// The scale mutations are measured in: the standard deviation of prior codes.
double PriorScale(const torch::Tensor& prior_codes) {
  const double scale = prior_codes.std(/*unbiased=*/false).item<double>();
  return std::isfinite(scale) && scale > 0 ? scale : 1.0;
}

// numpy.percentile's default (linear interpolation) of ascending `sorted`.
double Percentile(const std::vector<double>& sorted, double percent) {
  const double rank = percent / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (rank - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

Genetic::Genetic(std::shared_ptr<const ImageSpace> space, const GeneticParams& params,
                 uint64_t seed)
    : space_(std::move(space)), params_(params), generator_(MakeGenerator(seed, "genetic")) {}

absl::StatusOr<std::vector<Candidate>> Genetic::Ask(int count, int64_t first_id) {
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("count: ", count, " must be positive"));
  }
  ScoredCodes answered = last_.Answered();
  if (!answered.empty()) parents_ = std::move(answered);
  torch::Tensor codes;
  const char* origin = "genetic";
  if (parents_.empty()) {
    codes = space_->SamplePrior(count, generator_);
    origin = "prior";
    if (prior_scale_ == 0) prior_scale_ = PriorScale(codes);
  } else {
    codes = Breed(count);
  }
  std::vector<Candidate> candidates = MakeCandidates(*space_, codes, first_id, origin);
  ledger_.Add(first_id, count);
  last_ = ScoredCodes::FromCandidates(candidates);
  return candidates;
}

torch::Tensor Genetic::Breed(int count) {
  const std::vector<double>& objectives = parents_.objectives();
  const int64_t n = parents_.size();
  // Rank parents from best to worst (ties keep their order: deterministic).
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return objectives[a] > objectives[b]; });
  const torch::Tensor ranked =
      parents_.codes().index_select(0, torch::tensor(order, torch::kLong));

  // Fitness as in XDream: softmax of the clipped objectives at temperature
  // kT = std / selectivity (std of the unclipped objectives).
  std::vector<double> ascending(objectives);
  std::sort(ascending.begin(), ascending.end());
  const double mean = std::accumulate(ascending.begin(), ascending.end(), 0.0) / n;
  double var = 0;
  for (double s : ascending) var += (s - mean) * (s - mean);
  const double kt = std::max(std::sqrt(var / n) / params_.selectivity, 1e-8);
  const double ceiling = Percentile(ascending, 95);
  const double top = std::min(objectives[order[0]], ceiling);
  torch::Tensor fitness = torch::empty({n}, torch::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    const double f = std::exp((std::min(objectives[order[i]], ceiling) - top) / kt);
    // Objectives near the double range can overflow kT; never let them
    // poison the draw: the best parent always has fitness 1.
    fitness[i] = i == 0 ? 1.0 : (std::isfinite(f) ? f : 0.0);
  }

  const int64_t n_elites = std::min<int64_t>({params_.elites, n, count / 2});
  const int64_t n_children = count - n_elites;
  torch::Tensor elites = ranked.slice(0, 0, n_elites);
  if (n_children == 0) return elites.clone();
  const int64_t d = ranked.size(1);
  const torch::Tensor first = ranked.index_select(
      0, torch::multinomial(fitness, n_children, /*replacement=*/true, generator_));
  const torch::Tensor second = ranked.index_select(
      0, torch::multinomial(fitness, n_children, /*replacement=*/true, generator_));
  const torch::Tensor from_first =
      torch::rand({n_children, d}, generator_, torch::kFloat) < params_.heritability;
  torch::Tensor children = torch::where(from_first, first, second);
  const torch::Tensor mutate =
      torch::rand({n_children, d}, generator_, torch::kFloat) < params_.mutation_rate;
  const torch::Tensor noise = torch::randn({n_children, d}, generator_, torch::kFloat) *
                              (params_.mutation_size * prior_scale_);
  children = children + noise * mutate;
  return torch::cat({elites, children});
}

absl::Status Genetic::Tell(absl::Span<const Observation> observations) {
  if (absl::Status s = CheckObservations(observations, ledger_, name()); !s.ok()) return s;
  for (const Observation& o : observations) {
    if (!last_.Set(o.id, o.objective)) parents_.Set(o.id, o.objective);
  }
  return absl::OkStatus();
}

void Genetic::Save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kFormat)));
  SaveGenerator(archive, "generator", generator_);
  ledger_.Save(archive, "ledger");
  last_.Save(archive, "last");
  parents_.Save(archive, "parents");
  archive.write("prior_scale", c10::IValue(prior_scale_));
}

absl::Status Genetic::Load(torch::serialize::InputArchive& archive) {
  if (absl::Status s = CheckFormat(archive, kFormat); !s.ok()) return s;
  absl::StatusOr<at::Generator> generator = LoadGenerator(archive, "generator");
  if (!generator.ok()) return generator.status();
  absl::StatusOr<IdLedger> ledger = IdLedger::Load(archive, "ledger");
  if (!ledger.ok()) return ledger.status();
  absl::StatusOr<ScoredCodes> last = ScoredCodes::Load(archive, "last", space_->code_size());
  if (!last.ok()) return last.status();
  absl::StatusOr<ScoredCodes> parents =
      ScoredCodes::Load(archive, "parents", space_->code_size());
  if (!parents.ok()) return parents.status();
  absl::StatusOr<double> prior_scale = ReadDouble(archive, "prior_scale");
  if (!prior_scale.ok()) return prior_scale.status();
  generator_ = *std::move(generator);
  ledger_ = *std::move(ledger);
  last_ = *std::move(last);
  parents_ = *std::move(parents);
  prior_scale_ = *prior_scale;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Optimizer>> MakeGenetic(const OptimizerSpec& spec,
                                                       const OptimizerContext& context) {
  ParamReader reader(spec.params, "optimizer.params");
  GeneticParams p;
  p.elites = reader.GetInt("elites", p.elites, 0, 1000);
  p.selectivity = reader.Get("selectivity", p.selectivity, 0.01, 100.0);
  p.heritability = reader.Get("heritability", p.heritability, 0.5, 1.0);
  p.mutation_rate = reader.Get("mutation_rate", p.mutation_rate, 0.0, 1.0);
  p.mutation_size = reader.Get("mutation_size", p.mutation_size, 0.0, 10.0);
  if (absl::Status s = reader.Finish(); !s.ok()) return s;
  return std::make_unique<Genetic>(context.image_space, p, context.seed);
}

}  // namespace stimloop
