#include "optimizers/cmaes.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "optimizers/cmaes_core.h"
#include "base/params.h"
#include "optimizers/proposals.h"

namespace stimloop {
namespace {

constexpr int64_t kPriorScaleSamples = 256;

class Cmaes : public Optimizer {
 public:
  Cmaes(std::shared_ptr<const ImageSpace> image_space, at::Generator generator, CmaesCore core)
      : image_space_(std::move(image_space)),
        generator_(std::move(generator)),
        core_(std::move(core)) {}

  absl::string_view name() const override { return "cmaes"; }

  absl::StatusOr<std::vector<Candidate>> Ask(int count, int64_t first_id) override;
  absl::Status Tell(absl::Span<const Observation> observations) override;
  torch::Tensor BestGuess() const override;
  void Save(torch::serialize::OutputArchive& archive) const override;
  absl::Status Load(torch::serialize::InputArchive& archive) override;

 private:
  std::shared_ptr<const ImageSpace> image_space_;
  at::Generator generator_;
  CmaesCore core_;
  IdLedger ledger_;         // every id Ask returned
  ScoredCodes generation_;  // the latest generation's codes and answers
};

absl::StatusOr<std::vector<Candidate>> Cmaes::Ask(int count, int64_t first_id) {
  if (count < 1) {
    return absl::InvalidArgumentError(absl::StrCat("count: ", count, " is below the minimum 1"));
  }
  torch::NoGradGuard no_grad;
  // Work on copies (cheap: the core never changes its tensors in place) and
  // commit only when everything succeeded.
  CmaesCore core = core_;
  at::Generator generator = CopyGenerator(generator_);
  std::vector<Candidate> candidates;
  try {
    const ScoredCodes answered = generation_.Answered();
    if (!answered.empty()) {
      core.Update(answered.codes(), torch::tensor(answered.objectives(), torch::kFloat64));
    }
    candidates = MakeCandidates(*image_space_, core.Sample(count, generator), first_id, "cmaes");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cmaes: proposing failed (", e.what(), ")"));
  }
  core_ = std::move(core);
  generator_ = std::move(generator);
  ledger_.Add(first_id, count);
  generation_ = ScoredCodes::FromCandidates(candidates);
  return candidates;
}

absl::Status Cmaes::Tell(absl::Span<const Observation> observations) {
  if (absl::Status s = CheckObservations(observations, ledger_, "cmaes"); !s.ok()) return s;
  // Ids of earlier generations are known but their distribution is gone: the
  // values are dropped (Set returns false).
  for (const Observation& o : observations) generation_.Set(o.id, o.objective);
  return absl::OkStatus();
}

torch::Tensor Cmaes::BestGuess() const {
  torch::NoGradGuard no_grad;
  torch::Tensor mean = image_space_->Project(core_.mean().to(torch::kFloat32).unsqueeze(0));
  return QuantizeImages(image_space_->Decode(mean))[0];
}

void Cmaes::Save(torch::serialize::OutputArchive& archive) const {
  core_.Save(archive, "core.");
  SaveGenerator(archive, "generator", generator_);
  ledger_.Save(archive, "ids");
  generation_.Save(archive, "generation");
}

absl::Status Cmaes::Load(torch::serialize::InputArchive& archive) {
  CmaesCore core = core_;  // Load replaces tensors, never writes into them
  if (absl::Status s = core.Load(archive, "core."); !s.ok()) return s;
  absl::StatusOr<at::Generator> generator = LoadGenerator(archive, "generator");
  if (!generator.ok()) return generator.status();
  absl::StatusOr<IdLedger> ledger = IdLedger::Load(archive, "ids");
  if (!ledger.ok()) return ledger.status();
  absl::StatusOr<ScoredCodes> generation =
      ScoredCodes::Load(archive, "generation", image_space_->code_size());
  if (!generation.ok()) return generation.status();
  core_ = std::move(core);
  generator_ = *std::move(generator);
  ledger_ = *std::move(ledger);
  generation_ = *std::move(generation);
  return absl::OkStatus();
}

// The root mean square over coordinates of the per-coordinate standard
// deviation of kPriorScaleSamples prior codes; 1 if that is not positive.
double PriorScale(const ImageSpace& space, at::Generator& generator) {
  torch::Tensor codes = space.SamplePrior(kPriorScaleSamples, generator).to(torch::kFloat64);
  const double scale = codes.var(/*dim=*/0).mean().sqrt().item<double>();
  return std::isfinite(scale) && scale > 0 ? scale : 1.0;
}

}  // namespace

// The automatic initial step, in units of the prior's scale (see cmaes.h).
constexpr double kAutoSigmaInPriorScales = 3.0;

absl::StatusOr<std::unique_ptr<Optimizer>> MakeCmaes(const OptimizerSpec& spec,
                                                     const OptimizerContext& context) {
  if (context.image_space == nullptr) {
    return absl::InternalError("MakeCmaes: context lacks an image space");
  }
  ParamReader params(spec.params, "optimizer.params");
  double sigma0 = params.Get("sigma0", 0.0, 0.0, 1e6);
  const int64_t full_cov_max_dim = params.GetInt("full_cov_max_dim", 1000, 0, 4096);
  if (absl::Status s = params.Finish(); !s.ok()) return s;

  torch::NoGradGuard no_grad;
  const ImageSpace& space = *context.image_space;
  at::Generator generator = MakeGenerator(context.seed, "cmaes");
  torch::Tensor mean = space.Project(space.SamplePrior(1, generator))[0];
  if (sigma0 == 0) sigma0 = kAutoSigmaInPriorScales * PriorScale(space, generator);
  const bool separable = space.code_size() > full_cov_max_dim;
  return std::make_unique<Cmaes>(context.image_space, std::move(generator),
                                 CmaesCore(mean, sigma0, separable));
}

}  // namespace stimloop
