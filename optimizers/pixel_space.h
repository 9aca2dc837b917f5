// Pixel space: the code is the image itself.
//
//   code_size = C * H * W; code[c * H * W + y * W + x] = image[c, y, x].
//   Prior: independent uniform [0, 1] per pixel (white noise). It is the
//     least informed prior and the classic baseline of pixel-wise search; use
//     the spectral space for natural-looking random images.
//   Decode clamps to [0, 1] (zero gradient outside), Project clamps codes to
//     [0, 1], and Encode is exact: Decode(Encode(x)) == x for x in [0, 1].
//   Parameters: none ("image_space.params" must be empty).
#ifndef STIMLOOP_OPTIMIZERS_PIXEL_SPACE_H_
#define STIMLOOP_OPTIMIZERS_PIXEL_SPACE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "optimizers/image_space.h"

namespace stimloop {

class PixelSpace : public ImageSpace {
 public:
  explicit PixelSpace(ImageShape shape) : ImageSpace(shape) {}

  absl::string_view name() const override { return "pixel"; }
  int64_t code_size() const override { return shape().numel(); }
  torch::Tensor SamplePrior(int64_t n, at::Generator& generator) const override;
  torch::Tensor Decode(const torch::Tensor& codes) const override;
  torch::Tensor Encode(const torch::Tensor& images) const override;
  torch::Tensor Project(const torch::Tensor& codes) const override;
};

// INVALID_ARGUMENT for any parameter ("image_space.params.<key>").
absl::StatusOr<std::shared_ptr<const ImageSpace>> MakePixelSpace(const ImageSpaceSpec& spec,
                                                                 const ImageShape& shape);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_PIXEL_SPACE_H_
