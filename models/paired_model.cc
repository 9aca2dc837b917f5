#include "models/paired_model.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstring>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.paired_model.v1";

torch::Tensor BytesTensor(const std::string& bytes) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string TensorBytes(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
                     static_cast<size_t>(c.numel()));
}

}  // namespace

PairedModel::PairedModel(std::shared_ptr<const Surrogate> flexible,
                         std::shared_ptr<const GaborModel> parametric, bool parametric_joins)
    : flexible_(std::move(flexible)),
      parametric_(std::move(parametric)),
      parametric_joins_(parametric_joins) {
  TORCH_CHECK(flexible_ != nullptr && parametric_ != nullptr, "PairedModel: a part is null");
  TORCH_CHECK(flexible_->version() == parametric_->version() &&
                  flexible_->num_neurons() == parametric_->num_neurons(),
              "PairedModel: the parts differ in version or neurons");
}

int64_t PairedModel::num_members() const {
  return flexible_->num_members() + (parametric_joins_ ? parametric_->num_members() : 0);
}

torch::Tensor PairedModel::PredictMembers(const torch::Tensor& images) const {
  torch::Tensor flexible = flexible_->PredictMembers(images);
  if (!parametric_joins_) return flexible;
  return torch::cat({flexible, parametric_->PredictMembers(images).to(flexible.dtype())}, 0);
}

absl::StatusOr<std::string> SerializePairedModel(const PairedModel& model) {
  absl::StatusOr<std::string> flexible = SerializeSurrogate(*model.flexible());
  if (!flexible.ok()) return flexible.status();
  absl::StatusOr<std::string> parametric = SerializeGaborModel(*model.parametric());
  if (!parametric.ok()) return parametric.status();
  std::ostringstream out;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(std::string(kFormat)));
    archive.write("flexible", BytesTensor(*flexible));
    archive.write("parametric", BytesTensor(*parametric));
    archive.write("parametric_joins",
                  torch::tensor(static_cast<int64_t>(model.parametric_joins()), torch::kLong));
    archive.save_to(out);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot serialize the paired model: ", e.what_without_backtrace()));
  }
  return out.str();
}

absl::StatusOr<std::shared_ptr<const PairedModel>> DeserializePairedModel(
    const std::string& bytes, std::shared_ptr<const FrontEnd> front_end, int64_t height,
    int64_t width) {
  std::string flexible_bytes, parametric_bytes;
  bool joins = false;
  try {
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    c10::IValue format;
    if (!archive.try_read("format", format) || !format.isString() ||
        format.toStringRef() != kFormat) {
      return absl::InvalidArgumentError("paired model checkpoint: not a stimloop paired model");
    }
    torch::Tensor flexible, parametric, joins_flag;
    archive.read("flexible", flexible);
    archive.read("parametric", parametric);
    archive.read("parametric_joins", joins_flag);
    flexible_bytes = TensorBytes(flexible);
    parametric_bytes = TensorBytes(parametric);
    joins = joins_flag.item<int64_t>() != 0;
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("paired model checkpoint: unreadable: ", e.what_without_backtrace()));
  }
  auto flexible = DeserializeSurrogate(flexible_bytes, std::move(front_end));
  if (!flexible.ok()) return flexible.status();
  auto parametric = DeserializeGaborModel(parametric_bytes, height, width);
  if (!parametric.ok()) return parametric.status();
  if ((*flexible)->version() != (*parametric)->version() ||
      (*flexible)->num_neurons() != (*parametric)->num_neurons()) {
    return absl::InvalidArgumentError(
        "paired model checkpoint: its parts differ in version or neurons");
  }
  return std::make_shared<const PairedModel>(*std::move(flexible), *std::move(parametric), joins);
}

}  // namespace stimloop
