#include "optimizers/image_space.h"

#include "absl/strings/str_cat.h"
#include "base/echo.h"
#include "optimizers/pixel_space.h"
#include "optimizers/spectral_space.h"

namespace stimloop {

absl::StatusOr<std::shared_ptr<const ImageSpace>> MakeImageSpace(const ImageSpaceSpec& spec,
                                                                 const ImageShape& shape) {
  if (shape.channels < 1 || shape.height < 1 || shape.width < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("image_space: image shape ", shape.channels, "x", shape.height, "x",
                     shape.width, " must be at least 1x1x1"));
  }
  if (spec.name == "pixel") return MakePixelSpace(spec, shape);
  if (spec.name == "spectral") return MakeSpectralSpace(spec, shape);
  if (spec.name == "torchscript") {
    return absl::InvalidArgumentError(
        "image_space.name: 'torchscript' needs a TorchScript generator "
        "(image_space.generator_path), which this build cannot load yet "
        "(available: pixel, spectral)");
  }
  return absl::InvalidArgumentError(absl::StrCat("image_space.name: unknown image space ",
                                                 QuotedEcho(spec.name),
                                                 " (known: pixel, spectral)"));
}

torch::Tensor QuantizeImages(const torch::Tensor& images) {
  return torch::round(images.detach().to(torch::kFloat).clamp(0.0, 1.0) * 255.0) / 255.0;
}

torch::Tensor ToUint8(const torch::Tensor& images) {
  return torch::round(images.detach().to(torch::kFloat).clamp(0.0, 1.0) * 255.0)
      .to(torch::kUInt8);
}

torch::Tensor FromUint8(const torch::Tensor& images) {
  return images.to(torch::kFloat) / 255.0;
}

}  // namespace stimloop
