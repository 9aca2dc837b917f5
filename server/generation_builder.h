// Turns what a generation boundary produced into the journal entries of the
// generation, in hand-out order: the optimizer's candidates with reference
// images and repeats interleaved (BuildGeneration), or a validation block's
// rounds (BuildValidationBlock). Pure functions of their arguments: the
// same inputs give the same entries, bit for bit.
//
// Every entry gets sequence = its id's number, id "<session_id>-<sequence>"
// and the generation; the optimizer's images are quantized to 8 bits and
// PNG-encoded here (the server learns from the 8-bit image shown).
#ifndef STIMLOOP_SERVER_GENERATION_BUILDER_H_
#define STIMLOOP_SERVER_GENERATION_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "optimizers/image_io.h"
#include "optimizers/optimizer.h"
#include "server/session_journal.h"

namespace stimloop {

// `per_generation` reference images for generation `generation` (1-based),
// cycling through `references` from where the generation before stopped,
// with ids first_id, first_id + 1, ... and origin kReferenceOrigin. Empty
// when `references` is.
std::vector<Candidate> ReferenceCandidates(absl::Span<const NamedImage> references,
                                           int per_generation, int64_t generation,
                                           int64_t first_id);

// The entries of generation `generation` of session `session_id`:
// `candidates` (the optimizer's, ids first_id, first_id + 1, ...), then as
// extras `references` (ReferenceCandidates, ids following the candidates'),
// then a repeat of each of `repeats` (entries shown before; the repeat keeps
// their PNG, code, model version and prediction, so that its presentations
// pool with theirs; ids following the references'). The extras are spread
// evenly among the candidates: extra j goes to the first slot at or after
// (2j + 1) * total / (2 * extras). INTERNAL naming the position when a
// candidate's id is not first_id + its position; a PNG encoding error as
// is.
absl::StatusOr<std::vector<StimulusEntry>> BuildGeneration(
    const std::string& session_id, int64_t generation, int64_t first_id,
    std::vector<Candidate> candidates, std::vector<Candidate> references,
    absl::Span<const StimulusEntry* const> repeats);

// The entries of a validation block, generation `generation` of session
// `session_id`, sequences from first_id: `presentations` rounds, each
// showing every one of `shown` once (copied: PNG, code, model version,
// prediction), in an order drawn from `seed` (stream "validation.<g>").
// Origin kValidationOrigin, never a reference.
std::vector<StimulusEntry> BuildValidationBlock(const std::string& session_id,
                                                int64_t generation, int64_t first_id,
                                                absl::Span<const StimulusEntry> shown,
                                                int presentations, uint64_t seed);

}  // namespace stimloop

#endif  // STIMLOOP_SERVER_GENERATION_BUILDER_H_
