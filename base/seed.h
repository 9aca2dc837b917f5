// The one seed mixer. Every random stream of a session (optimizers, refits,
// fits, simulated cells) derives its seed from the session seed through these
// functions, so one seed fixes every number, bit for bit, on every platform.
// The values are part of the stored-session format: changing any function
// here changes what resumed and replayed sessions propose.
#ifndef STIMLOOP_BASE_SEED_H_
#define STIMLOOP_BASE_SEED_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace stimloop {

// The SplitMix64 increment (2^64 / golden ratio).
inline constexpr uint64_t kSplitMix64Gamma = 0x9e3779b97f4a7c15ULL;

// The SplitMix64 finalizer of x + kSplitMix64Gamma (Steele, Lea & Flood
// 2014): a bijection that spreads nearby inputs over all 64 bits.
// SplitMix64(0) == 0xe220a8397b1dcdaf.
uint64_t SplitMix64(uint64_t x);

// The seed of stream `stream` of `seed`: SplitMix64(seed ^ SplitMix64(stream)).
// Distinct streams of one seed, and one stream of distinct seeds, are
// decorrelated.
uint64_t DeriveSeed(uint64_t seed, uint64_t stream);

// Element `index` (from 0) of the SplitMix64 sequence started at `seed`:
// SplitMix64(seed + index * kSplitMix64Gamma).
uint64_t SplitMix64At(uint64_t seed, uint64_t index);

// FNV-1a (64-bit) of `label`: a stream number for a named stream, the same
// on every platform.
uint64_t LabelHash(absl::string_view label);

}  // namespace stimloop

#endif  // STIMLOOP_BASE_SEED_H_
