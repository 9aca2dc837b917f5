// Image files at the edges: PNG encoding of displayed stimuli, and folders of
// PNG/JPEG images (reference images, candidate pools) read and resized with
// OpenCV. Images inside are uint8 [C, H, W] or float [C, H, W] in [0, 1].
#ifndef STIMLOOP_OPTIMIZERS_IMAGE_IO_H_
#define STIMLOOP_OPTIMIZERS_IMAGE_IO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "optimizers/image_space.h"
#include <torch/types.h>

namespace stimloop {

// uint8 [C, H, W] (C = 1 or 3, RGB order) -> PNG bytes. Lossless.
absl::StatusOr<std::string> EncodePng(const torch::Tensor& image_u8);

// PNG/JPEG bytes -> uint8 [C, H, W] (RGB order for colour images).
// INVALID_ARGUMENT when the bytes are not an image.
absl::StatusOr<torch::Tensor> DecodeImage(absl::string_view bytes);

// One image read from a folder.
struct NamedImage {
  std::string name;     // file name without the folder
  torch::Tensor image;  // float [C, H, W] on the 8-bit grid, the session's shape
};

// Reads every .png/.jpg/.jpeg file of `dir` (sorted by name, so the order is
// deterministic), converts it to `shape.channels` and resizes it to
// shape.height x shape.width (area interpolation when shrinking). Errors name
// `field` and the file: a missing folder, an unreadable file, no images.
absl::StatusOr<std::vector<NamedImage>> LoadImageFolder(const std::string& dir,
                                                        const ImageShape& shape,
                                                        absl::string_view field);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_IMAGE_IO_H_
