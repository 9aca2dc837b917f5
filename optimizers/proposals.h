// What the model-free optimizers (random, genetic) share: turning codes into
// the candidates a rig is shown, the ids they handed out, one generation's
// codes with their measured objectives, and checkpointing of all of it.
#ifndef STIMLOOP_OPTIMIZERS_PROPOSALS_H_
#define STIMLOOP_OPTIMIZERS_PROPOSALS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "optimizers/image_space.h"
#include "optimizers/optimizer.h"
#include <torch/types.h>

namespace stimloop {

// Codes [N, D] -> candidates with ids first_id .. first_id + N - 1, images
// QuantizeImages(Decode(Project(codes))) and origin `origin`. Each
// candidate's code is what the optimizer should learn from: for the pixel
// space Encode(shown image), exactly what was shown; otherwise Project(codes).
std::vector<Candidate> MakeCandidates(const ImageSpace& space, const torch::Tensor& codes,
                                      int64_t first_id, absl::string_view origin);

// The ids an optimizer handed out, as ranges [first, first + count).
class IdLedger {
 public:
  void Add(int64_t first, int64_t count);
  bool Contains(int64_t id) const;

  void Save(torch::serialize::OutputArchive& archive, const std::string& key) const;
  static absl::StatusOr<IdLedger> Load(torch::serialize::InputArchive& archive,
                                       const std::string& key);

 private:
  std::vector<std::pair<int64_t, int64_t>> ranges_;  // first, count; sorted by first
};

// One generation's codes and measured objectives (NaN: not answered yet).
class ScoredCodes {
 public:
  ScoredCodes() = default;
  // All members unanswered.
  static ScoredCodes FromCandidates(absl::Span<const Candidate> candidates);

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  bool empty() const { return ids_.empty(); }
  const std::vector<int64_t>& ids() const { return ids_; }
  const torch::Tensor& codes() const { return codes_; }  // [N, D] float
  const std::vector<double>& objectives() const { return objectives_; }

  // Sets (replaces) the objective of `id`; false when `id` is not a member.
  bool Set(int64_t id, double objective);
  // The answered members only, in the same order.
  ScoredCodes Answered() const;

  void Save(torch::serialize::OutputArchive& archive, const std::string& prefix) const;
  // DATA_LOSS when a member is missing or its code is not `code_size` long.
  static absl::StatusOr<ScoredCodes> Load(torch::serialize::InputArchive& archive,
                                          const std::string& prefix, int64_t code_size);

 private:
  std::vector<int64_t> ids_;
  torch::Tensor codes_;
  std::vector<double> objectives_;
};

// INVALID_ARGUMENT naming the first bad observation ("observations[3].id: 17
// was never proposed by genetic", "observations[0].objective: nan is not
// finite"); OK when every id is in `ledger`.
absl::Status CheckObservations(absl::Span<const Observation> observations,
                               const IdLedger& ledger, absl::string_view optimizer);

// A new CPU generator in `generator`'s state, independent of it. Use it
// instead of at::Generator::clone(), which leaks its copy in LibTorch 1.13
// (GeneratorImpl::clone leaves the copy's weak count at 0, so the last
// release never frees it: 2.6 KB per call, found by fuzz/service_fuzzer).
at::Generator CopyGenerator(const at::Generator& generator);

// Generator state in an archive. Load returns a fresh CPU generator with the
// saved state (DATA_LOSS when missing or malformed).
void SaveGenerator(torch::serialize::OutputArchive& archive, const std::string& key,
                   const at::Generator& generator);
absl::StatusOr<at::Generator> LoadGenerator(torch::serialize::InputArchive& archive,
                                            const std::string& key);

// OK when the archive's "format" entry is `expected`; INVALID_ARGUMENT
// (another optimizer's or version's state) or DATA_LOSS (no entry) else.
absl::Status CheckFormat(torch::serialize::InputArchive& archive, absl::string_view expected);

// Scalars in an archive; DATA_LOSS naming `key` when missing or mistyped.
absl::StatusOr<int64_t> ReadInt(torch::serialize::InputArchive& archive, const std::string& key);
absl::StatusOr<double> ReadDouble(torch::serialize::InputArchive& archive,
                                  const std::string& key);
absl::StatusOr<torch::Tensor> ReadTensor(torch::serialize::InputArchive& archive,
                                         const std::string& key);
absl::StatusOr<std::string> ReadString(torch::serialize::InputArchive& archive,
                                       const std::string& key);

}  // namespace stimloop

#endif  // STIMLOOP_OPTIMIZERS_PROPOSALS_H_
