// Image spaces: how an optimizer's codes become images.
//
// A code is a 1-D float vector; a batch of codes is [N, D]. Images are
// float tensors [N, C, H, W] (or [C, H, W] for one) with values in [0, 1].
// What the rig displays is always the 8-bit quantization of an image
// (QuantizeImages); the server learns from that, never from the original.
#ifndef STIMLOOP_OPTIMIZERS_IMAGE_SPACE_H_
#define STIMLOOP_OPTIMIZERS_IMAGE_SPACE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include <torch/types.h>

namespace stimloop {

// Size of every image of a session.
struct ImageShape {
  int64_t channels = 1;
  int64_t height = 0;
  int64_t width = 0;
  int64_t numel() const { return channels * height * width; }
};

// What the session config says about the image space.
struct ImageSpaceSpec {
  std::string name;                      // "pixel", "spectral", "torchscript"
  std::map<std::string, double> params;  // by name; see each space's header
  std::string generator_path;            // TorchScript generator ("torchscript")
};

// Maps codes to images. Immutable after construction and thread-safe.
class ImageSpace {
 public:
  virtual ~ImageSpace() = default;

  virtual absl::string_view name() const = 0;
  const ImageShape& shape() const { return shape_; }
  // Length D of one code.
  virtual int64_t code_size() const = 0;

  // Draws n codes [n, D] from the space's prior (natural-looking random
  // images), using only `generator` for randomness.
  virtual torch::Tensor SamplePrior(int64_t n, at::Generator& generator) const = 0;

  // Codes [N, D] -> images [N, C, H, W] in [0, 1], not quantized.
  // Differentiable with respect to the codes.
  virtual torch::Tensor Decode(const torch::Tensor& codes) const = 0;

  // Decode before its final clamp to the [0, 1] box: values may leave it,
  // and Decode(c) == DecodeUnclipped(c).clamp(0, 1). For optimizers that
  // handle the box themselves (gradient_ascent's ClampToBox lets gradients
  // pull saturated pixels back). Default: Decode (spaces that never clip).
  virtual torch::Tensor DecodeUnclipped(const torch::Tensor& codes) const {
    return Decode(codes);
  }

  // Images [N, C, H, W] -> the codes whose Decode is closest to them (exact
  // for pixel space, a least-squares projection for spectral space).
  virtual torch::Tensor Encode(const torch::Tensor& images) const = 0;

  // The nearest valid codes (e.g. pixel codes clamped to [0, 1]).
  virtual torch::Tensor Project(const torch::Tensor& codes) const { return codes; }

 protected:
  explicit ImageSpace(ImageShape shape) : shape_(shape) {}

 private:
  ImageShape shape_;
};

// Builds the image space a spec names. INVALID_ARGUMENT names the field
// ("image_space.name", "image_space.params.<key>") for unknown names,
// unknown parameters and values out of range.
absl::StatusOr<std::shared_ptr<const ImageSpace>> MakeImageSpace(
    const ImageSpaceSpec& spec, const ImageShape& shape);

// Rounds images to the 8-bit grid: round(clamp(x, 0, 1) * 255) / 255, float.
torch::Tensor QuantizeImages(const torch::Tensor& images);

// Images in [0, 1] -> uint8 tensors of the same shape (round to nearest).
torch::Tensor ToUint8(const torch::Tensor& images);

// uint8 images -> float images on the 8-bit grid.
torch::Tensor FromUint8(const torch::Tensor& images);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_IMAGE_SPACE_H_
