// The default strategy (optimizer name "portfolio"): every generation is
// split between a model-based source, gradient ascent on the session's
// surrogate (optimizers/gradient_ascent.h), and a model-free one, CMA-ES
// (optimizers/cmaes.h), and the split follows what each source's images
// measured. Where the model fits, its images lead and it gets most of each
// generation; where it does not, CMA-ES's do, and the session runs as
// CMA-ES with a share of model proposals it can afford. Neither source is
// ever starved, so a model that starts to fit later is noticed.
//
// Generation g of `count` candidates: ids first_id .. first_id + n - 1 come
// from gradient ascent, the rest from CMA-ES, n = round(share * count),
// at least 1 and at most count - 1 when count >= 2.
//
// The share. After each Ask, from the last `window` generations (the one
// just asked has no measurements yet): in each, the answered candidates of
// both sources are ranked together and a source scores a hit for each of
// its candidates at or above the generation's top-quartile cut (the
// ceil(n/4)-th best objective of the n answered). Per source, hit rate =
// (hits + 1) / (answered + 4) summed over the window (a prior of 1/4, the
// rate of a source no better than the other); share = rate_model /
// (rate_model + rate_free), clipped to [min_share, max_share]. It is a
// function of the measurements alone, so runs replay exactly.
//
// Asking ahead (server/session.h): the share of generation g+1 is fixed
// when generation g is asked, so PrepareAsk can run gradient ascent's part
// of g+1 (the slow part, seconds) while the rig shows g; the boundary's Ask
// then adds CMA-ES's part, which sees every measurement up to then.
//
// Tell: each observation goes to the source that proposed it; an id neither
// proposed is INVALID_ARGUMENT (and nothing changes). Re-told values (repeat
// presentations) replace earlier ones in the window too.
// BestGuess: gradient ascent's (the current model's optimum), thread-safe.
// Randomness: none of its own; the sources draw from their own streams of
// the session seed. Save/Load capture the share, the window, every
// generation's split and both sources' states.
//
// Parameters ("optimizer.params"):
//   initial_share  0.5   [0, 1]    model share before anything is measured
//   min_share      0.25  [0, 1]    the share never falls below this ...
//   max_share      0.75  [0, 1]    ... nor rises above this (>= min_share)
//   window         3     [1, 100]  generations the share is computed from
//   gradient_ascent.<key>, cmaes.<key>: that source's parameter <key> (see
//                  its header), e.g. gradient_ascent.steps.
#ifndef STIMLOOP_OPTIMIZERS_PORTFOLIO_H_
#define STIMLOOP_OPTIMIZERS_PORTFOLIO_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "optimizers/optimizer.h"

namespace stimloop {

struct PortfolioParams {
  double initial_share = 0.5;
  double min_share = 0.25;
  double max_share = 0.75;
  int64_t window = 3;
};

class Portfolio : public Optimizer {
 public:
  // REQUIRES: both sources non-null; model_based's BestGuess thread-safe.
  Portfolio(std::unique_ptr<Optimizer> model_based, std::unique_ptr<Optimizer> model_free,
            const PortfolioParams& params);

  absl::string_view name() const override { return "portfolio"; }
  absl::StatusOr<std::vector<Candidate>> Ask(int count, int64_t first_id) override;
  absl::Status Tell(absl::Span<const Observation> observations) override;
  absl::Status PrepareAsk(int count, int64_t first_id) override;
  bool prepares_asks() const override { return true; }
  void CancelAsks() override;
  torch::Tensor BestGuess() const override { return model_based_->BestGuess(); }
  bool best_guess_is_thread_safe() const override { return true; }
  void Save(torch::serialize::OutputArchive& archive) const override;
  absl::Status Load(torch::serialize::InputArchive& archive) override;

  // The model-based share of the next generation.
  double share() const { return share_; }
  // How many of `count` candidates the next Ask gives the model-based source.
  int ModelCount(int count) const;

 private:
  // One generation: ids [first_id, first_id + count), the first `model` of
  // them from the model-based source.
  struct Split {
    int64_t first_id = 0;
    int64_t count = 0;
    int64_t model = 0;
  };
  // The split that handed out `id`; nullptr when none did.
  const Split* FindSplit(int64_t id) const;
  // The split whose objectives are window_[i].
  const Split& WindowSplit(size_t i) const {
    return splits_[splits_.size() - window_.size() + i];
  }
  double ComputeShare() const;

  std::unique_ptr<Optimizer> model_based_;
  std::unique_ptr<Optimizer> model_free_;
  PortfolioParams params_;
  double share_;
  std::vector<Split> splits_;  // every generation, ascending first_id
  // The objectives measured so far (NaN: none yet) of the newest
  // params_.window + 1 generations, the tail of splits_.
  std::deque<std::vector<double>> window_;
};

// Builds both sources from the context (which must hold a model source:
// FAILED_PRECONDITION otherwise) and the parameters above; INVALID_ARGUMENT
// names "optimizer.params.<key>" (a source's own key as
// "optimizer.params.gradient_ascent.<key>").
absl::StatusOr<std::unique_ptr<Optimizer>> MakePortfolio(const OptimizerSpec& spec,
                                                         const OptimizerContext& context);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_PORTFOLIO_H_
