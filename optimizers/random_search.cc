#include "optimizers/random_search.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/params.h"
#include <torch/serialize/archive.h>

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.random/1";

}  // namespace

RandomSearch::RandomSearch(std::shared_ptr<const ImageSpace> space, uint64_t seed)
    : space_(std::move(space)), generator_(MakeGenerator(seed, "random")) {}

absl::StatusOr<std::vector<Candidate>> RandomSearch::Ask(int count, int64_t first_id) {
  if (count <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("count: ", count, " must be positive"));
  }
  std::vector<Candidate> candidates =
      MakeCandidates(*space_, space_->SamplePrior(count, generator_), first_id, "random");
  ledger_.Add(first_id, count);
  last_ = ScoredCodes::FromCandidates(candidates);
  return candidates;
}

absl::Status RandomSearch::Tell(absl::Span<const Observation> observations) {
  if (absl::Status s = CheckObservations(observations, ledger_, name()); !s.ok()) return s;
  for (const Observation& o : observations) {
    const bool in_last = last_.Set(o.id, o.objective);
    if (o.id == best_id_) {
      best_objective_ = o.objective;  // a repeat presentation changed its mean
    } else if (in_last && o.objective > best_objective_) {
      const auto& ids = last_.ids();
      const int64_t row = std::find(ids.begin(), ids.end(), o.id) - ids.begin();
      best_id_ = o.id;
      best_objective_ = o.objective;
      best_code_ = last_.codes()[row].clone();
    }
  }
  return absl::OkStatus();
}

void RandomSearch::Save(torch::serialize::OutputArchive& archive) const {
  archive.write("format", c10::IValue(std::string(kFormat)));
  SaveGenerator(archive, "generator", generator_);
  ledger_.Save(archive, "ledger");
  last_.Save(archive, "last");
  archive.write("best.id", c10::IValue(best_id_));
  archive.write("best.objective", c10::IValue(best_objective_));
  archive.write("best.code", best_code_.defined() ? best_code_ : torch::empty({0}));
}

absl::Status RandomSearch::Load(torch::serialize::InputArchive& archive) {
  if (absl::Status s = CheckFormat(archive, kFormat); !s.ok()) return s;
  absl::StatusOr<at::Generator> generator = LoadGenerator(archive, "generator");
  if (!generator.ok()) return generator.status();
  absl::StatusOr<IdLedger> ledger = IdLedger::Load(archive, "ledger");
  if (!ledger.ok()) return ledger.status();
  absl::StatusOr<ScoredCodes> last = ScoredCodes::Load(archive, "last", space_->code_size());
  if (!last.ok()) return last.status();
  absl::StatusOr<int64_t> best_id = ReadInt(archive, "best.id");
  if (!best_id.ok()) return best_id.status();
  absl::StatusOr<double> best_objective = ReadDouble(archive, "best.objective");
  if (!best_objective.ok()) return best_objective.status();
  absl::StatusOr<torch::Tensor> best_code = ReadTensor(archive, "best.code");
  if (!best_code.ok()) return best_code.status();
  if (*best_id >= 0 && (best_code->dim() != 1 || best_code->size(0) != space_->code_size())) {
    return absl::DataLossError("optimizer state: 'best.code' does not fit the image space");
  }
  generator_ = *std::move(generator);
  ledger_ = *std::move(ledger);
  last_ = *std::move(last);
  best_id_ = *best_id;
  best_objective_ = *best_objective;
  best_code_ = *best_id >= 0 ? *best_code : torch::Tensor();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Optimizer>> MakeRandomSearch(const OptimizerSpec& spec,
                                                            const OptimizerContext& context) {
  ParamReader params(spec.params, "optimizer.params");
  if (absl::Status s = params.Finish(); !s.ok()) return s;
  return std::make_unique<RandomSearch>(context.image_space, context.seed);
}

}  // namespace stimloop
