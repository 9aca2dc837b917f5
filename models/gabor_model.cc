#include "models/gabor_model.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.gabor_model.v1";
constexpr double kPi = 3.14159265358979323846;
constexpr char kNames[][16] = {"cx",    "cy",         "theta",        "log_sigma",  "log_cycles",
                               "phase", "log_linear", "log_exponent", "log_energy", "log_baseline"};
constexpr size_t kNumParameters = sizeof(kNames) / sizeof(kNames[0]);

}  // namespace

std::vector<torch::Tensor> GaborParameters::all() const {
  return {cx,    cy,         theta,        log_sigma,  log_cycles,
          phase, log_linear, log_exponent, log_energy, log_baseline};
}

GaborParameters GaborParameters::FromList(const std::vector<torch::Tensor>& t) {
  TORCH_CHECK(t.size() == kNumParameters, "GaborParameters: ", t.size(), " tensors");
  return {t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9]};
}

torch::Tensor GaborWeightPair(const GaborParameters& g, int64_t height, int64_t width) {
  const torch::Tensor y = (torch::arange(height, torch::kFloat) + 0.5).view({1, height, 1});
  const torch::Tensor x = (torch::arange(width, torch::kFloat) + 0.5).view({1, 1, width});
  auto column = [](const torch::Tensor& t) { return t.reshape({-1, 1, 1}); };
  const torch::Tensor dx = x - column(g.cx) * width;
  const torch::Tensor dy = y - column(g.cy) * height;
  const torch::Tensor sigma = column(g.log_sigma).exp();
  const torch::Tensor wavelength = sigma * column(g.log_cycles).exp();
  const torch::Tensor along = column(g.theta).cos() * dx + column(g.theta).sin() * dy;
  const torch::Tensor envelope = (-(dx * dx + dy * dy) / (2 * sigma * sigma)).exp();
  const torch::Tensor angle = 2 * kPi * along / wavelength + column(g.phase);
  // cos(angle + pi / 2) = -sin(angle): the quadrature partner.
  const torch::Tensor carrier = torch::cat({angle.cos(), -angle.sin()}, 0);
  const torch::Tensor weight = torch::cat({envelope, envelope}, 0);
  // Zero mean under the envelope's weighting, so a uniform image drives nothing.
  const torch::Tensor mean = (weight * carrier).sum({1, 2}, true) / weight.sum({1, 2}, true);
  const torch::Tensor w = (weight * (carrier - mean)).flatten(1);
  return w / w.norm(2, 1, true).clamp_min(1e-12);
}

torch::Tensor GaborRatesFromDrives(const GaborParameters& g, const torch::Tensor& drives) {
  const std::vector<torch::Tensor> halves = drives.chunk(2, 1);
  const torch::Tensor &d1 = halves[0], &d2 = halves[1];
  auto row = [](const torch::Tensor& t) { return t.reshape({1, -1}); };
  const torch::Tensor exponent = row(g.log_exponent).exp().clamp(0.5, 6);
  return row(g.log_linear).exp() * d1.clamp_min(1e-6).pow(exponent) +
         row(g.log_energy).exp() * (d1 * d1 + d2 * d2) + row(g.log_baseline).exp();
}

GaborModel::GaborModel(int64_t version, int64_t height, int64_t width,
                       const GaborParameters& params)
    : version_(version), height_(height), width_(width) {
  std::vector<torch::Tensor> copies;
  for (const torch::Tensor& t : params.all()) {
    TORCH_CHECK(t.defined() && t.dim() == 2 && t.sizes() == params.cx.sizes() && t.numel() >= 1,
                "GaborModel: every parameter must be [num_members, num_neurons]");
    copies.push_back(t.detach().to(torch::kFloat).clone());
  }
  TORCH_CHECK(height >= 1 && width >= 1, "GaborModel: bad image size");
  params_ = GaborParameters::FromList(copies);
  torch::NoGradGuard no_grad;
  weights_ = GaborWeightPair(params_, height, width);
}

torch::Tensor GaborModel::PredictMembers(const torch::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(2) == height_ && images.size(3) == width_,
              "GaborModel: images must be [N, C, ", height_, ", ", width_, "]");
  const torch::Tensor centered = images.to(torch::kFloat).mean(1).flatten(1) - 0.5;
  const torch::Tensor rates =
      GaborRatesFromDrives(params_, centered.matmul(weights_.t()));  // [N, M * n]
  return rates.view({images.size(0), num_members(), num_neurons()}).permute({1, 0, 2});
}

absl::StatusOr<std::string> SerializeGaborModel(const GaborModel& model) {
  std::ostringstream out;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string(kFormat)));
    archive.write("version", torch::tensor(model.version(), torch::kLong));
    archive.write("height", torch::tensor(model.height(), torch::kLong));
    archive.write("width", torch::tensor(model.width(), torch::kLong));
    const std::vector<torch::Tensor> params = model.parameters().all();
    for (size_t i = 0; i < kNumParameters; ++i) archive.write(kNames[i], params[i]);
    archive.save_to(out);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot serialize the Gabor model: ", e.what_without_backtrace()));
  }
  return out.str();
}

absl::StatusOr<std::shared_ptr<const GaborModel>> DeserializeGaborModel(const std::string& bytes,
                                                                        int64_t height,
                                                                        int64_t width) {
  try {
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    c10::IValue format;
    if (!archive.try_read("format", format) || !format.isString() ||
        format.toStringRef() != kFormat) {
      return absl::InvalidArgumentError("Gabor model checkpoint: not a stimloop Gabor model");
    }
    auto read_int = [&](const char* key) {
      torch::Tensor t;
      archive.read(key, t);
      return t.item<int64_t>();
    };
    const int64_t version = read_int("version");
    const int64_t saved_height = read_int("height"), saved_width = read_int("width");
    if (saved_height != height || saved_width != width) {
      return absl::InvalidArgumentError(
          absl::StrCat("Gabor model checkpoint: saved for ", saved_height, "x", saved_width,
                       " images, the session's are ", height, "x", width));
    }
    std::vector<torch::Tensor> params(kNumParameters);
    for (size_t i = 0; i < kNumParameters; ++i) archive.read(kNames[i], params[i]);
    return std::make_shared<const GaborModel>(version, height, width,
                                              GaborParameters::FromList(params));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("Gabor model checkpoint: unreadable: ", e.what_without_backtrace()));
  }
}

}  // namespace stimloop
