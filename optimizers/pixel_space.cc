#include "optimizers/pixel_space.h"

#include "base/params.h"

namespace stimloop {

torch::Tensor PixelSpace::SamplePrior(int64_t n, at::Generator& generator) const {
  return torch::rand({n, code_size()}, generator, torch::kFloat);
}

torch::Tensor PixelSpace::Decode(const torch::Tensor& codes) const {
  const ImageShape& s = shape();
  return codes.clamp(0.0, 1.0).reshape({-1, s.channels, s.height, s.width});
}

torch::Tensor PixelSpace::Encode(const torch::Tensor& images) const {
  return images.reshape({-1, code_size()}).to(torch::kFloat).clone();
}

torch::Tensor PixelSpace::Project(const torch::Tensor& codes) const {
  return codes.clamp(0.0, 1.0);
}

absl::StatusOr<std::shared_ptr<const ImageSpace>> MakePixelSpace(const ImageSpaceSpec& spec,
                                                                 const ImageShape& shape) {
  ParamReader params(spec.params, "image_space.params");
  if (absl::Status s = params.Finish(); !s.ok()) return s;
  return std::make_shared<const PixelSpace>(shape);
}

}  // namespace stimloop
