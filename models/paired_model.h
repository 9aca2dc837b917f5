// Both model classes in one ensemble (surrogate.params.model_class 2): the
// flexible model (models/surrogate.h) and the parametric Gabor model
// (models/gabor_model.h), fitted on the same trials with the same held-out
// split (models/paired_fit.h). Each class is wrong somewhere: the
// parametric model cannot describe a cell that is not one Gabor pair
// (colour, end-stopping, conjunctions), the flexible one extrapolates a
// field's surround poorly from few trials. Their members together predict
// with both, so gradient ascent climbs the average of the two classes and a
// Thompson start may draw a member of either.
//
// The parametric members join the ensemble only when `parametric_joins`
// (the fit decides it from held-out correlation); otherwise the model
// predicts with the flexible members alone but still holds the parametric
// fit, so that the next version can start from it. The version is the
// flexible model's. Immutable and thread-safe.
#ifndef STIMLOOP_MODELS_PAIRED_MODEL_H_
#define STIMLOOP_MODELS_PAIRED_MODEL_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/gabor_model.h"
#include "models/response_model.h"
#include "models/surrogate.h"

namespace stimloop {

class PairedModel : public ResponseModel {
 public:
  // REQUIRES: both non-null, with the same version and number of neurons.
  PairedModel(std::shared_ptr<const Surrogate> flexible,
              std::shared_ptr<const GaborModel> parametric, bool parametric_joins);

  int64_t version() const override { return flexible_->version(); }
  // The flexible members, plus the parametric ones when they join.
  int64_t num_members() const override;
  // images [N, C, H, W] in [0, 1] -> rates [M, N, n]: the flexible members
  // first, then (when they join) the parametric ones.
  torch::Tensor PredictMembers(const torch::Tensor& images) const override;

  const std::shared_ptr<const Surrogate>& flexible() const { return flexible_; }
  const std::shared_ptr<const GaborModel>& parametric() const { return parametric_; }
  bool parametric_joins() const { return parametric_joins_; }

 private:
  std::shared_ptr<const Surrogate> flexible_;
  std::shared_ptr<const GaborModel> parametric_;
  bool parametric_joins_;
};

// The model as torch::save archive bytes holding both classes' checkpoints
// (SerializeSurrogate's and SerializeGaborModel's) and the join decision.
// INTERNAL on failure.
absl::StatusOr<std::string> SerializePairedModel(const PairedModel& model);
// Reads SerializePairedModel's bytes around the session's front end and
// image size; INVALID_ARGUMENT when they are not a paired model checkpoint
// or either part does not match (the parts' own errors).
absl::StatusOr<std::shared_ptr<const PairedModel>> DeserializePairedModel(
    const std::string& bytes, std::shared_ptr<const FrontEnd> front_end, int64_t height,
    int64_t width);

}  // namespace stimloop

#endif  // STIMLOOP_MODELS_PAIRED_MODEL_H_
