#include "optimizers/proposals.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/serialize/archive.h>

namespace stimloop {
namespace {

absl::Status Missing(const std::string& key) {
  return absl::DataLossError(absl::StrCat("optimizer state: '", key, "' is missing or malformed"));
}

// Reads a tensor; false when missing or not readable.
bool TryReadTensor(torch::serialize::InputArchive& archive, const std::string& key,
                   torch::Tensor& tensor) {
  try {
    return archive.try_read(key, tensor) && tensor.defined();
  } catch (const c10::Error&) {
    return false;
  }
}

bool TryReadValue(torch::serialize::InputArchive& archive, const std::string& key,
                  c10::IValue& value) {
  try {
    return archive.try_read(key, value);
  } catch (const c10::Error&) {
    return false;
  }
}

}  // namespace

std::vector<Candidate> MakeCandidates(const ImageSpace& space, const torch::Tensor& codes,
                                      int64_t first_id, absl::string_view origin) {
  at::NoGradGuard no_grad;
  torch::Tensor learned = space.Project(codes.to(torch::kFloat));
  const torch::Tensor images = QuantizeImages(space.Decode(learned));
  if (space.name() == "pixel") learned = space.Encode(images);
  std::vector<Candidate> candidates(images.size(0));
  for (int64_t i = 0; i < images.size(0); ++i) {
    Candidate& c = candidates[i];
    c.id = first_id + i;
    c.code = learned[i].clone();
    c.image = images[i].clone();
    c.origin = std::string(origin);
  }
  return candidates;
}

void IdLedger::Add(int64_t first, int64_t count) {
  if (count <= 0) return;
  if (!ranges_.empty() && ranges_.back().first + ranges_.back().second == first) {
    ranges_.back().second += count;  // contiguous with the last range
    return;
  }
  ranges_.emplace_back(first, count);
  std::sort(ranges_.begin(), ranges_.end());
}

bool IdLedger::Contains(int64_t id) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(),
                             std::make_pair(id, std::numeric_limits<int64_t>::max()));
  if (it == ranges_.begin()) return false;
  --it;
  return id < it->first + it->second;
}

void IdLedger::Save(torch::serialize::OutputArchive& archive, const std::string& key) const {
  torch::Tensor t = torch::empty({static_cast<int64_t>(ranges_.size()), 2}, torch::kLong);
  for (size_t i = 0; i < ranges_.size(); ++i) {
    t[i][0] = ranges_[i].first;
    t[i][1] = ranges_[i].second;
  }
  archive.write(key, t);
}

absl::StatusOr<IdLedger> IdLedger::Load(torch::serialize::InputArchive& archive,
                                        const std::string& key) {
  torch::Tensor t;
  if (!TryReadTensor(archive, key, t) || t.dim() != 2 || t.size(1) != 2 ||
      t.scalar_type() != torch::kLong) {
    return Missing(key);
  }
  IdLedger ledger;
  auto a = t.accessor<int64_t, 2>();
  for (int64_t i = 0; i < t.size(0); ++i) ledger.ranges_.emplace_back(a[i][0], a[i][1]);
  std::sort(ledger.ranges_.begin(), ledger.ranges_.end());
  return ledger;
}

ScoredCodes ScoredCodes::FromCandidates(absl::Span<const Candidate> candidates) {
  ScoredCodes s;
  std::vector<torch::Tensor> codes;
  for (const Candidate& c : candidates) {
    s.ids_.push_back(c.id);
    codes.push_back(c.code);
  }
  s.codes_ = codes.empty() ? torch::Tensor() : torch::stack(codes);
  s.objectives_.assign(s.ids_.size(), std::numeric_limits<double>::quiet_NaN());
  return s;
}

bool ScoredCodes::Set(int64_t id, double objective) {
  auto it = std::find(ids_.begin(), ids_.end(), id);
  if (it == ids_.end()) return false;
  objectives_[it - ids_.begin()] = objective;
  return true;
}

ScoredCodes ScoredCodes::Answered() const {
  ScoredCodes s;
  std::vector<int64_t> rows;
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (std::isnan(objectives_[i])) continue;
    rows.push_back(static_cast<int64_t>(i));
    s.ids_.push_back(ids_[i]);
    s.objectives_.push_back(objectives_[i]);
  }
  if (!rows.empty()) s.codes_ = codes_.index_select(0, torch::tensor(rows, torch::kLong));
  return s;
}

void ScoredCodes::Save(torch::serialize::OutputArchive& archive,
                       const std::string& prefix) const {
  archive.write(prefix + ".ids", torch::tensor(ids_, torch::kLong));
  archive.write(prefix + ".objectives", torch::tensor(objectives_, torch::kDouble));
  archive.write(prefix + ".codes", codes_.defined() ? codes_ : torch::empty({0, 0}));
}

absl::StatusOr<ScoredCodes> ScoredCodes::Load(torch::serialize::InputArchive& archive,
                                              const std::string& prefix, int64_t code_size) {
  torch::Tensor ids, objectives, codes;
  if (!TryReadTensor(archive, prefix + ".ids", ids) || ids.dim() != 1 ||
      ids.scalar_type() != torch::kLong) {
    return Missing(prefix + ".ids");
  }
  const int64_t n = ids.size(0);
  if (!TryReadTensor(archive, prefix + ".objectives", objectives) ||
      objectives.scalar_type() != torch::kDouble || objectives.sizes() != ids.sizes()) {
    return Missing(prefix + ".objectives");
  }
  if (!TryReadTensor(archive, prefix + ".codes", codes) || codes.dim() != 2 ||
      (n > 0 && (codes.size(0) != n || codes.size(1) != code_size ||
                 codes.scalar_type() != torch::kFloat))) {
    return Missing(prefix + ".codes");
  }
  ScoredCodes s;
  const torch::Tensor i = ids.contiguous();
  s.ids_.assign(i.data_ptr<int64_t>(), i.data_ptr<int64_t>() + n);
  const torch::Tensor o = objectives.contiguous();
  s.objectives_.assign(o.data_ptr<double>(), o.data_ptr<double>() + n);
  if (n > 0) s.codes_ = codes.contiguous();
  return s;
}

absl::Status CheckObservations(absl::Span<const Observation> observations,
                               const IdLedger& ledger, absl::string_view optimizer) {
  for (size_t i = 0; i < observations.size(); ++i) {
    const Observation& o = observations[i];
    if (!ledger.Contains(o.id)) {
      return absl::InvalidArgumentError(absl::StrCat("observations[", i, "].id: ", o.id,
                                                     " was never proposed by ", optimizer));
    }
    if (!std::isfinite(o.objective)) {
      return absl::InvalidArgumentError(
          absl::StrCat("observations[", i, "].objective: ", o.objective, " is not finite"));
    }
  }
  return absl::OkStatus();
}

at::Generator CopyGenerator(const at::Generator& generator) {
  at::Generator copy = at::make_generator<at::CPUGeneratorImpl>();
  copy.set_state(generator.get_state());
  return copy;
}

void SaveGenerator(torch::serialize::OutputArchive& archive, const std::string& key,
                   const at::Generator& generator) {
  archive.write(key, generator.get_state());
}

absl::StatusOr<at::Generator> LoadGenerator(torch::serialize::InputArchive& archive,
                                            const std::string& key) {
  torch::Tensor state;
  if (!TryReadTensor(archive, key, state)) return Missing(key);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>();
  try {
    generator.set_state(state);
  } catch (const c10::Error&) {
    return Missing(key);
  }
  return generator;
}

absl::StatusOr<int64_t> ReadInt(torch::serialize::InputArchive& archive,
                                const std::string& key) {
  c10::IValue v;
  if (!TryReadValue(archive, key, v) || !v.isInt()) return Missing(key);
  return v.toInt();
}

absl::StatusOr<double> ReadDouble(torch::serialize::InputArchive& archive,
                                  const std::string& key) {
  c10::IValue v;
  if (!TryReadValue(archive, key, v) || !v.isDouble()) return Missing(key);
  return v.toDouble();
}

absl::StatusOr<torch::Tensor> ReadTensor(torch::serialize::InputArchive& archive,
                                         const std::string& key) {
  torch::Tensor t;
  if (!TryReadTensor(archive, key, t)) return Missing(key);
  return t;
}

absl::StatusOr<std::string> ReadString(torch::serialize::InputArchive& archive,
                                       const std::string& key) {
  c10::IValue v;
  if (!TryReadValue(archive, key, v) || !v.isString()) return Missing(key);
  return v.toStringRef();
}

absl::Status CheckFormat(torch::serialize::InputArchive& archive, absl::string_view expected) {
  absl::StatusOr<std::string> format = ReadString(archive, "format");
  if (!format.ok()) return format.status();
  if (*format != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer state: format '", *format, "' is not ", expected));
  }
  return absl::OkStatus();
}

}  // namespace stimloop
