// What the store tests journal: a session config, a generation of
// stimulus entries and an acknowledgement, the same for every store kind.
#ifndef STIMLOOP_TESTS_SERVER_STORE_TEST_JOURNAL_H_
#define STIMLOOP_TESTS_SERVER_STORE_TEST_JOURNAL_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "server/session_journal.h"
#include "stimloop/v1/stimloop.pb.h"

namespace stimloop {

// A genetic session of 16x16 gray images, 2 neurons, with metadata that
// needs quoting.
inline v1::SessionConfig StoreTestConfig() {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.mutable_image()->set_channels(1);
  config.set_num_neurons(2);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(3);
  config.set_seed(7);
  (*config.mutable_metadata())["subject"] = "M1 \"quoted\"";
  return config;
}

// `count` entries from sequence `first_sequence` on, the last a reference
// (no code), the first with no prediction (NaN); PNG bytes with a NUL.
inline std::vector<StimulusEntry> StoreTestGeneration(const std::string& session,
                                                      int64_t generation,
                                                      int64_t first_sequence, int count) {
  std::vector<StimulusEntry> out;
  for (int i = 0; i < count; ++i) {
    StimulusEntry e;
    e.sequence = first_sequence + i;
    e.id = session + "-" + std::to_string(e.sequence);
    e.generation = generation;
    e.origin = i == count - 1 ? "reference" : "genetic";
    e.is_reference = i == count - 1;
    e.png = std::string("\x89PNG\0bytes", 10) + std::to_string(e.sequence);
    if (!e.is_reference) e.code = {0.5f, -1.25f, static_cast<float>(e.sequence)};
    e.model_version = i;
    e.predicted_objective = i == 0 ? std::numeric_limits<double>::quiet_NaN() : 1.5 * i;
    out.push_back(std::move(e));
  }
  return out;
}

inline v1::ReportResponsesAck StoreTestAck(int accepted, int64_t responses) {
  v1::ReportResponsesAck ack;
  ack.set_accepted(accepted);
  ack.mutable_counts()->set_responses(responses);
  return ack;
}

}  // namespace stimloop

#endif  // STIMLOOP_TESTS_SERVER_STORE_TEST_JOURNAL_H_
