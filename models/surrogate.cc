#include "models/surrogate.h"

#include <fstream>
#include <sstream>
#include <utility>

#include <torch/serialize.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

constexpr char kFormat[] = "stimloop.surrogate.v1";

// g of models/surrogate.h: drives -> rates.
torch::Tensor Rates(const torch::Tensor& z, RateNonlinearity output) {
  if (output == RateNonlinearity::kExp) return torch::exp(z.clamp_max(20));
  return torch::softplus(z);
}

int64_t ReadInt(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t.item<int64_t>();
}

absl::StatusOr<std::shared_ptr<const Surrogate>> ReadArchive(
    torch::serialize::InputArchive& archive, std::shared_ptr<const FrontEnd> front_end,
    const std::string& where) {
  c10::IValue format, frontend;
  if (!archive.try_read("format", format) || !format.isString() ||
      format.toStringRef() != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a stimloop surrogate checkpoint"));
  }
  archive.read("frontend", frontend);
  SurrogateHeadOptions options;
  options.features.channels = ReadInt(archive, "feature_channels");
  options.features.height = ReadInt(archive, "feature_height");
  options.features.width = ReadInt(archive, "feature_width");
  options.core_channels = ReadInt(archive, "core_channels");
  options.num_neurons = ReadInt(archive, "num_neurons");
  options.output = static_cast<RateNonlinearity>(ReadInt(archive, "output"));
  torch::Tensor readout;  // absent in checkpoints from before the Gaussian readout
  if (archive.try_read("readout", readout)) {
    const int64_t kind = readout.item<int64_t>();
    if (kind != 0 && kind != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown readout mask ", kind, " (0 free, 1 Gaussian)"));
    }
    options.readout = static_cast<ReadoutMask>(kind);
  }
  torch::Tensor normalization;  // absent in checkpoints from before the pool
  if (archive.try_read("normalization", normalization)) {
    options.normalization = normalization.item<int64_t>() != 0;
  }
  const int64_t version = ReadInt(archive, "version");
  const int64_t members = ReadInt(archive, "num_members");
  const FeatureShape& shape = front_end->feature_shape();
  if (frontend.toStringRef() != front_end->Describe() ||
      shape.channels != options.features.channels || shape.height != options.features.height ||
      shape.width != options.features.width) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": saved with front end '", frontend.toStringRef(), "' giving [",
        options.features.channels, ", ", options.features.height, ", ", options.features.width,
        "] features; this session's front end is '", front_end->Describe(), "' giving [",
        shape.channels, ", ", shape.height, ", ", shape.width, "]"));
  }
  std::vector<SurrogateHead> heads;
  for (int64_t m = 0; m < members; ++m) {
    SurrogateHead head(options);
    torch::serialize::InputArchive sub;
    archive.read(absl::StrCat("member_", m), sub);
    head->load(sub);
    heads.push_back(std::move(head));
  }
  return std::make_shared<const Surrogate>(version, std::move(front_end), std::move(heads));
}

void WriteArchive(const Surrogate& model, torch::serialize::OutputArchive& archive) {
  const SurrogateHeadOptions& o = model.members().front()->options();
  auto put = [&](const char* key, int64_t value) {
    archive.write(key, torch::tensor(value, torch::kLong));
  };
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("frontend", c10::IValue(model.front_end()->Describe()));
  put("version", model.version());
  put("num_members", model.num_members());
  put("feature_channels", o.features.channels);
  put("feature_height", o.features.height);
  put("feature_width", o.features.width);
  put("core_channels", o.core_channels);
  put("num_neurons", o.num_neurons);
  put("output", static_cast<int64_t>(o.output));
  put("readout", static_cast<int64_t>(o.readout));
  put("normalization", o.normalization ? 1 : 0);
  for (int64_t m = 0; m < model.num_members(); ++m) {
    torch::serialize::OutputArchive sub;
    model.members()[m]->save(sub);
    archive.write(absl::StrCat("member_", m), sub);
  }
}

}  // namespace

SurrogateHeadImpl::SurrogateHeadImpl(const SurrogateHeadOptions& options) : options_(options) {
  const FeatureShape& f = options.features;
  TORCH_CHECK(f.channels >= 1 && f.height >= 1 && f.width >= 1 && options.core_channels >= 0 &&
                  options.num_neurons >= 1,
              "SurrogateHead: bad options");
  if (options.core_channels > 0) {
    core_ = register_module(
        "core", torch::nn::Conv2d(torch::nn::Conv2dOptions(f.channels, options.core_channels, 1)));
  }
  readout_ = register_module(
      "readout", FactorizedReadout(f.channels + options.core_channels, f.height, f.width,
                                   options.num_neurons, options.readout));
  if (options.normalization) {
    pool_ = register_module("pool", FactorizedReadout(f.channels + options.core_channels, f.height,
                                                      f.width, options.num_neurons,
                                                      ReadoutMask::kFree));
  }
  feature_mean_ = register_buffer("feature_mean", torch::zeros({1, f.channels, 1, 1}));
  feature_scale_ = register_buffer("feature_scale", torch::ones({1, f.channels, 1, 1}));
}

torch::Tensor SurrogateHeadImpl::forward(const torch::Tensor& features) const {
  torch::Tensor x = (features - feature_mean_) / feature_scale_;
  if (options_.core_channels > 0) {
    x = torch::cat({x, torch::elu(torch::conv2d(x, core_->weight, core_->bias))}, 1);
  }
  const torch::Tensor rates = Rates(readout_->forward(x), options_.output);
  return pool_ ? rates / (1 + torch::softplus(pool_->forward(x))) : rates;
}

torch::Tensor SurrogateHeadImpl::ForwardPositionMajor(const torch::Tensor& standardized,
                                                      const torch::Tensor& position_noise) const {
  const FeatureShape& f = options_.features;
  TORCH_CHECK(standardized.dim() == 3 && standardized.size(1) == f.height * f.width &&
                  standardized.size(2) == f.channels,
              "SurrogateHead: position-major features must be [N, ", f.height * f.width, ", ",
              f.channels, "], got ", standardized.sizes());
  // Index letters: b trial, p position, f feature channel, k core channel,
  // j neuron. z[b, j] = sum_p mask[j, p] u[b, p, j] + bias[j] with
  // u[b, p, j] = sum_f w[j, f] x[b, p, f] + sum_k w[j, F + k] core[b, p, k].
  const torch::Tensor& weights = readout_->weights();  // [n, F + K]
  const int64_t n = options_.num_neurons, k = options_.core_channels;
  torch::Tensor u, core;  // [b, p, j], [b, p, K]
  if (k > 0) {
    const torch::Tensor both = torch::matmul(
        standardized, torch::cat({core_->weight.flatten(1), weights.narrow(1, 0, f.channels)}, 0)
                          .t());  // [b, p, K + n]
    core = torch::elu(both.narrow(2, 0, k) + core_->bias);
    u = both.narrow(2, k, n) + torch::matmul(core, weights.narrow(1, f.channels, k).t());
  } else {
    u = torch::matmul(standardized, weights.t());
  }
  const torch::Tensor mask = position_noise.defined()
                                 ? readout_->SampledMask(position_noise).flatten(2).transpose(1, 2)
                                 : readout_->mask().flatten(1).t();  // [b, p, j] or [p, j]
  const torch::Tensor rates = Rates((u * mask).sum(1) + readout_->bias(), options_.output);
  if (!pool_) return rates;
  // The pool: the same sums with its own weights and (free) mask.
  const torch::Tensor& pool_weights = pool_->weights();
  torch::Tensor v = torch::matmul(standardized, pool_weights.narrow(1, 0, f.channels).t());
  if (k > 0) v = v + torch::matmul(core, pool_weights.narrow(1, f.channels, k).t());
  const torch::Tensor q = (v * pool_->mask().flatten(1).t()).sum(1) + pool_->bias();
  return rates / (1 + torch::softplus(q));
}

torch::Tensor StandardizedPositionMajor(const torch::Tensor& features, const torch::Tensor& mean,
                                        const torch::Tensor& scale) {
  return ((features - mean.reshape({1, -1, 1, 1})) / scale.reshape({1, -1, 1, 1}))
      .flatten(2)
      .transpose(1, 2)
      .contiguous();
}

void SurrogateHeadImpl::Reset(const torch::Tensor& feature_mean,
                              const torch::Tensor& feature_scale,
                              const torch::Tensor& initial_rates, at::Generator& generator,
                              const torch::Tensor& centers) {
  torch::NoGradGuard no_grad;
  feature_mean_.copy_(feature_mean.reshape({1, -1, 1, 1}));
  feature_scale_.copy_(feature_scale.reshape({1, -1, 1, 1}));
  if (options_.core_channels > 0) {
    const double fan_in = static_cast<double>(options_.features.channels);
    core_->weight.normal_(0, 1.0 / std::sqrt(fan_in), generator);
    core_->bias.zero_();
  }
  const torch::Tensor rates = initial_rates.to(torch::kFloat).clamp_min(1e-3);
  // Inverse of the output nonlinearity at the initial rates.
  const torch::Tensor bias = options_.output == RateNonlinearity::kExp
                                 ? rates.log()
                                 : rates + torch::log(-torch::expm1(-rates));
  readout_->ResetParameters(0.01, bias, generator, centers);
  // softplus(-4) = 0.018: the pool starts as a divisor of about 1.
  if (pool_) pool_->ResetParameters(0.01, torch::full_like(bias, -4.0), generator);
}

torch::Tensor SurrogateHeadImpl::Regularization(double l1_mask, double l1_features) const {
  const torch::Tensor penalty = readout_->Regularization(l1_mask, l1_features);
  return pool_ ? penalty + pool_->Regularization(l1_mask, l1_features) : penalty;
}

std::vector<torch::Tensor> SurrogateHeadImpl::CoreParameters() const {
  if (options_.core_channels == 0) return {};
  return {core_->weight, core_->bias};
}

Surrogate::Surrogate(int64_t version, std::shared_ptr<const FrontEnd> front_end,
                     std::vector<SurrogateHead> members)
    : version_(version), front_end_(std::move(front_end)), members_(std::move(members)) {
  TORCH_CHECK(front_end_ != nullptr && !members_.empty(), "Surrogate: empty");
  const FeatureShape& shape = front_end_->feature_shape();
  for (SurrogateHead& head : members_) {
    const SurrogateHeadOptions& o = head->options();
    TORCH_CHECK(o.features.channels == shape.channels && o.features.height == shape.height &&
                    o.features.width == shape.width &&
                    o.num_neurons == members_.front()->options().num_neurons &&
                    o.core_channels == members_.front()->options().core_channels &&
                    o.output == members_.front()->options().output &&
                    o.readout == members_.front()->options().readout &&
                    o.normalization == members_.front()->options().normalization,
                "Surrogate: member does not match the front end or the other members");
    head->eval();
    for (torch::Tensor& p : head->parameters()) {
      p.mutable_grad() = torch::Tensor();  // drop the trainer's last gradients
      p.set_requires_grad(false);
    }
  }
  StackMembers();
}

void Surrogate::StackMembers() {
  torch::NoGradGuard no_grad;
  const SurrogateHead& first = members_.front();
  for (const SurrogateHead& head : members_) {
    if (!torch::equal(head->feature_mean(), first->feature_mean()) ||
        !torch::equal(head->feature_scale(), first->feature_scale())) {
      return;  // members standardize differently: evaluate them one by one
    }
  }
  const int64_t channels = first->options().features.channels;
  const int64_t core_channels = first->options().core_channels;
  // One readout of every member, stacked.
  auto stack = [&](auto readout_of, torch::Tensor* masks, torch::Tensor* feature_weights,
                   torch::Tensor* core_weights, torch::Tensor* biases) {
    std::vector<torch::Tensor> m, fw, cw, b;
    for (const SurrogateHead& head : members_) {
      const FactorizedReadout& readout = readout_of(head);
      m.push_back(readout->mask().flatten(1));                    // [n, h*w]
      fw.push_back(readout->weights().narrow(1, 0, channels));   // [n, F]
      b.push_back(readout->bias().unsqueeze(0));                  // [1, n]
      if (core_channels > 0) cw.push_back(readout->weights().narrow(1, channels, core_channels));
    }
    *masks = torch::stack(m, 0);
    *feature_weights = torch::stack(fw, 0);
    *biases = torch::stack(b, 0);
    if (core_channels > 0) *core_weights = torch::stack(cw, 0);
  };
  stack([](const SurrogateHead& h) -> const FactorizedReadout& { return h->readout(); }, &masks_,
        &feature_weights_, &core_weights_, &biases_);
  if (first->options().normalization) {
    stack([](const SurrogateHead& h) -> const FactorizedReadout& { return h->pool(); },
          &pool_masks_, &pool_feature_weights_, &pool_core_weights_, &pool_biases_);
  }
  if (core_channels > 0) {
    std::vector<torch::Tensor> kernels, core_biases;
    for (const SurrogateHead& head : members_) {
      kernels.push_back(head->core()->weight);  // [K, F, 1, 1]
      core_biases.push_back(head->core()->bias);
    }
    core_kernels_ = torch::cat(kernels, 0);
    core_biases_ = torch::cat(core_biases, 0);
  }
  feature_mean_ = first->feature_mean();
  feature_scale_ = first->feature_scale();
}

torch::Tensor Surrogate::PredictMembersFromFeatures(const torch::Tensor& features) const {
  if (!feature_mean_.defined()) {
    std::vector<torch::Tensor> rates;
    rates.reserve(members_.size());
    for (const SurrogateHead& head : members_) rates.push_back(head->forward(features));
    return torch::stack(rates, 0);
  }
  // Index letters: b image, f feature channel, p feature position, m member,
  // j neuron, k core channel. SurrogateHeadImpl::forward, for all m at once.
  const torch::Tensor x = (features - feature_mean_) / feature_scale_;  // [b, f, h, w]
  torch::Tensor by_member;  // the members' core outputs [b, m, k, p]
  if (core_kernels_.defined()) {
    const int64_t members = masks_.size(0);
    const torch::Tensor core = torch::elu(torch::conv2d(x, core_kernels_, core_biases_));
    by_member = core.flatten(2).unflatten(1, {members, core_kernels_.size(0) / members});
  }
  // One stacked readout's drive [m, b, j].
  auto drive = [&](const torch::Tensor& masks, const torch::Tensor& feature_weights,
                   const torch::Tensor& core_weights, const torch::Tensor& biases) {
    const torch::Tensor pooled = torch::einsum("bfp,mjp->mbfj", {x.flatten(2), masks});
    torch::Tensor z = torch::einsum("mbfj,mjf->mbj", {pooled, feature_weights}) + biases;
    if (by_member.defined()) {
      const torch::Tensor pooled_core = torch::einsum("bmkp,mjp->mbkj", {by_member, masks});
      z = z + torch::einsum("mbkj,mjk->mbj", {pooled_core, core_weights});
    }
    return z;
  };
  const torch::Tensor rates = Rates(drive(masks_, feature_weights_, core_weights_, biases_),
                                    members_.front()->options().output);
  if (!pool_masks_.defined()) return rates;
  return rates / (1 + torch::softplus(drive(pool_masks_, pool_feature_weights_,
                                            pool_core_weights_, pool_biases_)));
}

torch::Tensor Surrogate::PredictMembers(const torch::Tensor& images) const {
  return PredictMembersFromFeatures(front_end_->Forward(images));
}

torch::Tensor Surrogate::PredictMean(const torch::Tensor& images) const {
  return PredictMembers(images).mean(0);
}

absl::Status SaveSurrogate(const Surrogate& model, const std::string& path) {
  try {
    torch::serialize::OutputArchive archive;
    WriteArchive(model, archive);
    archive.save_to(path);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot write surrogate checkpoint '", path, "': ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SerializeSurrogate(const Surrogate& model) {
  std::ostringstream out;
  try {
    torch::serialize::OutputArchive archive;
    WriteArchive(model, archive);
    archive.save_to(out);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("cannot serialize surrogate: ", e.what_without_backtrace()));
  }
  return out.str();
}

absl::StatusOr<std::shared_ptr<const Surrogate>> LoadSurrogate(
    const std::string& path, std::shared_ptr<const FrontEnd> front_end) {
  if (!std::ifstream(path).good()) {
    return absl::InvalidArgumentError(
        absl::StrCat("surrogate checkpoint '", path, "': cannot open the file"));
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    return ReadArchive(archive, std::move(front_end),
                       absl::StrCat("surrogate checkpoint '", path, "'"));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("surrogate checkpoint '", path,
                                                   "': unreadable: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<std::shared_ptr<const Surrogate>> DeserializeSurrogate(
    const std::string& bytes, std::shared_ptr<const FrontEnd> front_end) {
  try {
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    return ReadArchive(archive, std::move(front_end), "surrogate checkpoint");
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("surrogate checkpoint: unreadable: ", e.what_without_backtrace()));
  }
}

}  // namespace stimloop
