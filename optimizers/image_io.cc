#include "optimizers/image_io.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/echo.h"
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace stimloop {
namespace {

// uint8 [C, H, W] RGB -> cv::Mat HxW (gray) or HxWx3 (BGR).
cv::Mat ToMat(const torch::Tensor& image_u8) {
  torch::Tensor hwc = image_u8.permute({1, 2, 0}).contiguous();
  const int height = static_cast<int>(hwc.size(0));
  const int width = static_cast<int>(hwc.size(1));
  const int channels = static_cast<int>(hwc.size(2));
  cv::Mat mat(height, width, CV_8UC(channels), hwc.data_ptr<uint8_t>());
  cv::Mat out = mat.clone();
  if (channels == 3) cv::cvtColor(out, out, cv::COLOR_RGB2BGR);
  return out;
}

// cv::Mat gray or BGR -> uint8 [C, H, W] RGB.
torch::Tensor FromMat(cv::Mat mat) {
  if (mat.channels() == 3) cv::cvtColor(mat, mat, cv::COLOR_BGR2RGB);
  if (!mat.isContinuous()) mat = mat.clone();
  torch::Tensor hwc = torch::from_blob(mat.data, {mat.rows, mat.cols, mat.channels()},
                                       torch::kUInt8);
  // clone(), not contiguous(): for one channel the permuted view is already
  // contiguous and would still point into the Mat, freed on return.
  return hwc.permute({2, 0, 1}).clone(at::MemoryFormat::Contiguous);
}

}  // namespace

absl::StatusOr<std::string> EncodePng(const torch::Tensor& image_u8) {
  if (image_u8.dim() != 3 || image_u8.scalar_type() != torch::kUInt8 ||
      (image_u8.size(0) != 1 && image_u8.size(0) != 3)) {
    return absl::InvalidArgumentError("EncodePng: expects uint8 [1 or 3, H, W]");
  }
  std::vector<uchar> buffer;
  if (!cv::imencode(".png", ToMat(image_u8.cpu()), buffer)) {
    return absl::InternalError("EncodePng: OpenCV could not encode the image");
  }
  return std::string(buffer.begin(), buffer.end());
}

absl::StatusOr<torch::Tensor> DecodeImage(absl::string_view bytes) {
  std::vector<uchar> buffer(bytes.begin(), bytes.end());
  cv::Mat mat;
  if (!buffer.empty()) mat = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  if (mat.empty()) return absl::InvalidArgumentError("not a PNG or JPEG image");
  if (mat.depth() != CV_8U) mat.convertTo(mat, CV_8U, 1.0 / 256);
  if (mat.channels() == 4) cv::cvtColor(mat, mat, cv::COLOR_BGRA2BGR);
  return FromMat(mat);
}

absl::StatusOr<std::vector<NamedImage>> LoadImageFolder(const std::string& dir,
                                                        const ImageShape& shape,
                                                        absl::string_view field) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", QuotedEcho(dir), " is not a readable folder"));
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const std::string ext = absl::AsciiStrToLower(entry.path().extension().string());
    if (entry.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) {
      files.push_back(entry.path());
    }
  }
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot list ", QuotedEcho(dir), ": ", error.message()));
  }
  if (files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", QuotedEcho(dir), " holds no .png, .jpg or .jpeg file"));
  }
  std::sort(files.begin(), files.end());

  std::vector<NamedImage> images;
  images.reserve(files.size());
  for (const fs::path& file : files) {
    cv::Mat mat = cv::imread(file.string(), shape.channels == 1 ? cv::IMREAD_GRAYSCALE
                                                                : cv::IMREAD_COLOR);
    if (mat.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", QuotedEcho(file.string()), " is not a readable image"));
    }
    if (mat.depth() != CV_8U) mat.convertTo(mat, CV_8U, 1.0 / 256);
    const bool shrinking = mat.rows > shape.height || mat.cols > shape.width;
    cv::resize(mat, mat, cv::Size(static_cast<int>(shape.width), static_cast<int>(shape.height)),
               0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
    images.push_back({file.filename().string(), FromUint8(FromMat(mat))});
  }
  return images;
}

}  // namespace stimloop
