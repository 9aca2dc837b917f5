// The session core without the network: generations, imperfect trials,
// reference images, limits, and that a failed call changes nothing.
#include "server/session.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"

#include "optimizers/image_io.h"
#include "server/session_manager.h"

namespace stimloop {
namespace {

using ::testing::HasSubstr;

v1::SessionConfig Config(uint64_t seed = 1) {
  v1::SessionConfig config;
  config.mutable_image()->set_height(16);
  config.mutable_image()->set_width(16);
  config.set_num_neurons(2);
  config.mutable_optimizer()->set_name("genetic");
  config.mutable_image_space()->set_name("spectral");
  config.set_generation_size(6);
  config.set_seed(seed);
  return config;
}

google::protobuf::RepeatedPtrField<v1::Response> Responses(
    const std::vector<std::pair<std::string, std::vector<double>>>& items) {
  google::protobuf::RepeatedPtrField<v1::Response> out;
  for (const auto& [id, rates] : items) {
    v1::Response* r = out.Add();
    r->set_stimulus_id(id);
    if (rates.empty()) {
      r->set_skipped(true);
    } else {
      r->mutable_rates()->Add(rates.begin(), rates.end());
    }
  }
  return out;
}

class SessionTest : public ::testing::Test {
 protected:
  std::shared_ptr<Session> Create(const v1::SessionConfig& config) {
    auto session = manager_.Create(config);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *session : nullptr;
  }
  v1::Session Describe(Session& session) {
    v1::Session out;
    session.Describe(/*with_images=*/true, &out);
    return out;
  }

  // The folder requests name reference images in (server/asset_paths.h).
  static std::filesystem::path AssetsFolder() {
    return std::filesystem::temp_directory_path() /
           ("stimloop-session-test-assets-" + std::to_string(::getpid()));
  }

  InMemoryJournal journal_;
  SessionManager manager_{&journal_, 4, AssetsDir(AssetsFolder().string())};
};

TEST_F(SessionTest, GenerationIsHandedOutInPiecesAndNeverSpansTwo) {
  auto session = Create(Config());
  v1::StimulusBatch a, b, c;
  ASSERT_TRUE(session->Next(4, &a).ok());
  ASSERT_TRUE(session->Next(4, &b).ok());
  ASSERT_TRUE(session->Next(4, &c).ok());
  EXPECT_EQ(a.stimuli_size(), 4);
  EXPECT_EQ(a.remaining(), 2);
  EXPECT_EQ(b.stimuli_size(), 2);  // the rest of generation 1
  EXPECT_EQ(b.remaining(), 0);
  EXPECT_EQ(b.generation(), 1);
  EXPECT_EQ(c.generation(), 2);
  EXPECT_EQ(Describe(*session).counts().pending(), 10);
}

TEST_F(SessionTest, LargeImagesComeInBatchesUnderTheByteCap) {
  // 24 noise images of 512x512 RGB are ~19 MB of PNG: a whole generation
  // (max_count 0) would not fit a client's 64 MiB receive limit for long.
  v1::SessionConfig config = Config();
  config.mutable_image()->set_height(512);
  config.mutable_image()->set_width(512);
  config.mutable_image()->set_channels(3);
  config.mutable_optimizer()->set_name("random");
  config.mutable_image_space()->set_name("pixel");
  config.set_generation_size(24);
  auto session = Create(config);
  std::set<std::string> ids;
  int batches = 0;
  v1::StimulusBatch batch;
  do {
    batch.Clear();
    ASSERT_TRUE(session->Next(0, &batch).ok());
    ++batches;
    size_t bytes = 0;
    for (const auto& s : batch.stimuli()) {
      bytes += s.png().size();
      ids.insert(s.id());
    }
    EXPECT_LE(bytes, kMaxBatchPngBytes);
    // Batches are filled, not split early: one more image (< 1 MiB) would not fit.
    if (batch.remaining() > 0) EXPECT_GT(bytes + (size_t{1} << 20), kMaxBatchPngBytes);
    EXPECT_EQ(batch.generation(), 1);
    EXPECT_EQ(batch.remaining() + ids.size(), 24u);
  } while (batch.remaining() > 0);
  EXPECT_EQ(ids.size(), 24u);
  EXPECT_GE(batches, 2);
  // max_count still bounds a batch within the cap.
  batch.Clear();
  ASSERT_TRUE(session->Next(3, &batch).ok());
  EXPECT_EQ(batch.stimuli_size(), 3);
  EXPECT_EQ(batch.generation(), 2);
}

TEST_F(SessionTest, ImagesAreEightBitPngsOfTheSessionSize) {
  auto session = Create(Config());
  v1::StimulusBatch batch;
  ASSERT_TRUE(session->Next(0, &batch).ok());
  ASSERT_EQ(batch.stimuli_size(), 6);
  for (const auto& s : batch.stimuli()) {
    auto image = DecodeImage(s.png());
    ASSERT_TRUE(image.ok());
    EXPECT_EQ(image->sizes(), (std::vector<int64_t>{1, 16, 16}));
    EXPECT_EQ(s.origin(), "prior");  // generation 1 is drawn from the prior
  }
}

TEST_F(SessionTest, SkippedAndUnansweredStimuliStopBeingPendingOnlyWhenReported) {
  auto session = Create(Config());
  v1::StimulusBatch batch;
  ASSERT_TRUE(session->Next(0, &batch).ok());
  v1::ReportResponsesAck ack;
  // A fixation break on stimulus 0, a response for stimulus 1, nothing else.
  ASSERT_TRUE(session
                  ->Report("r1",
                           Responses({{batch.stimuli(0).id(), {}},
                                      {batch.stimuli(1).id(), {4, 1}}}),
                           &ack)
                  .ok());
  EXPECT_EQ(ack.counts().skipped(), 1);
  EXPECT_EQ(ack.counts().responses(), 1);
  EXPECT_EQ(ack.counts().pending(), 4);
  // The optimizer goes on with a partly answered generation.
  v1::StimulusBatch next;
  ASSERT_TRUE(session->Next(0, &next).ok());
  EXPECT_EQ(next.generation(), 2);
  // A skipped stimulus may still be answered later, out of order.
  ASSERT_TRUE(session
                  ->Report("r2",
                           Responses({{next.stimuli(2).id(), {1, 1}},
                                      {batch.stimuli(0).id(), {9, 0}}}),
                           &ack)
                  .ok());
  v1::Session described = Describe(*session);
  EXPECT_EQ(described.counts().responses(), 3);
  EXPECT_EQ(described.best_measured().stimulus().id(), batch.stimuli(0).id());
}

TEST_F(SessionTest, LateRepeatChangesTheMeanTheOptimizerHears) {
  auto session = Create(Config());
  v1::StimulusBatch g1, g2, g3;
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(session->Next(0, &g1).ok());
  ASSERT_TRUE(session->Report("a", Responses({{g1.stimuli(0).id(), {30, 0}}}), &ack).ok());
  ASSERT_TRUE(session->Next(0, &g2).ok());
  // A repeat of a generation-1 stimulus arrives during generation 2.
  ASSERT_TRUE(session->Report("b", Responses({{g1.stimuli(0).id(), {0, 0}}}), &ack).ok());
  ASSERT_TRUE(session->Next(0, &g3).ok());
  v1::Session described = Describe(*session);
  EXPECT_EQ(described.best_measured().presentations(), 2);
  EXPECT_DOUBLE_EQ(described.best_measured().mean_objective(), 15.0);
}

TEST_F(SessionTest, ObjectiveFollowsTheConfig) {
  v1::SessionConfig config = Config();
  config.mutable_objective()->mutable_population_control()->set_target(1);
  config.mutable_objective()->mutable_population_control()->set_others_weight(0.5);
  auto session = Create(config);
  v1::StimulusBatch batch;
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(session->Next(0, &batch).ok());
  ASSERT_TRUE(session
                  ->Report("r",
                           Responses({{batch.stimuli(0).id(), {10, 8}},
                                      {batch.stimuli(1).id(), {0, 6}}}),
                           &ack)
                  .ok());
  v1::Session described = Describe(*session);
  // 8 - 0.5 * 10 = 3 against 6 - 0.5 * 0 = 6.
  EXPECT_EQ(described.best_measured().stimulus().id(), batch.stimuli(1).id());
  EXPECT_DOUBLE_EQ(described.best_measured().mean_objective(), 6.0);
}

TEST_F(SessionTest, ReferenceImagesAreInterleavedAndNeverBest) {
  const auto dir = AssetsFolder() / "references";
  std::filesystem::create_directories(dir);
  for (int i = 0; i < 3; ++i) {
    torch::Tensor image = torch::full({3, 40, 30}, 60 * (i + 1), torch::kUInt8);
    auto png = EncodePng(image);
    ASSERT_TRUE(png.ok());
    std::ofstream(dir / ("ref" + std::to_string(i) + ".png"), std::ios::binary) << *png;
  }
  v1::SessionConfig config = Config();
  config.mutable_reference_images()->set_dir("references");  // in the assets folder
  config.mutable_reference_images()->set_per_generation(2);
  auto session = Create(config);
  v1::StimulusBatch batch;
  ASSERT_TRUE(session->Next(0, &batch).ok());
  ASSERT_EQ(batch.stimuli_size(), 8);
  std::vector<int> reference_positions;
  google::protobuf::RepeatedPtrField<v1::Response> responses;
  for (int i = 0; i < batch.stimuli_size(); ++i) {
    const auto& s = batch.stimuli(i);
    if (s.is_reference()) {
      reference_positions.push_back(i);
      EXPECT_EQ(s.origin(), "reference");
      auto image = DecodeImage(s.png());
      ASSERT_TRUE(image.ok());
      EXPECT_EQ(image->sizes(), (std::vector<int64_t>{1, 16, 16}));
    }
    v1::Response* r = responses.Add();
    r->set_stimulus_id(s.id());
    r->add_rates(s.is_reference() ? 100 : 1);  // references respond best
    r->add_rates(0);
  }
  EXPECT_EQ(reference_positions, (std::vector<int>{2, 6}));
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(session->Report("r", responses, &ack).ok());
  v1::Session described = Describe(*session);
  EXPECT_FALSE(described.best_measured().stimulus().is_reference());
  EXPECT_DOUBLE_EQ(described.best_measured().mean_objective(), 1.0);
  // The optimizer never saw the references: the next generation still works.
  v1::StimulusBatch next;
  ASSERT_TRUE(session->Next(0, &next).ok());
  EXPECT_EQ(next.stimuli_size(), 8);
  std::filesystem::remove_all(AssetsFolder());
}

// Rates for a batch: the first neuron gets rate(i) for the i-th stimulus.
google::protobuf::RepeatedPtrField<v1::Response> RatedBatch(
    const v1::StimulusBatch& batch, const std::function<double(int)>& rate) {
  google::protobuf::RepeatedPtrField<v1::Response> out;
  for (int i = 0; i < batch.stimuli_size(); ++i) {
    v1::Response* r = out.Add();
    r->set_stimulus_id(batch.stimuli(i).id());
    r->add_rates(rate(i));
    r->add_rates(0);
  }
  return out;
}

TEST_F(SessionTest, RepeatsReShowTheLeadingImagesAndPoolTheirPresentations) {
  v1::SessionConfig config = Config();
  // Random search: no duplicate images of its own (genetic elites are
  // copies, which pool too).
  config.mutable_optimizer()->set_name("random");
  config.mutable_repeats()->set_per_generation(2);
  config.mutable_repeats()->set_max_presentations(3);
  auto session = Create(config);
  v1::StimulusBatch g1, g2, g3, g4;
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(session->Next(0, &g1).ok());
  ASSERT_EQ(g1.stimuli_size(), 6) << "nothing measured yet: nothing to repeat";
  // Stimulus i of generation 1 responds i: the best are 5, then 4.
  ASSERT_TRUE(session->Report("1", RatedBatch(g1, [](int i) { return i; }), &ack).ok());

  ASSERT_TRUE(session->Next(0, &g2).ok());
  ASSERT_EQ(g2.stimuli_size(), 8);
  std::vector<std::string> repeated_pngs;
  for (const v1::Stimulus& s : g2.stimuli()) {
    if (s.origin() != "repeat") continue;
    EXPECT_FALSE(s.is_reference());
    repeated_pngs.push_back(s.png());
  }
  EXPECT_EQ(repeated_pngs,
            (std::vector<std::string>{g1.stimuli(5).png(), g1.stimuli(4).png()}));
  // The repeats of image 5 and 4 respond 1 and 0 (image 5 was lucky once);
  // the optimizer's new stimuli respond 3.5.
  ASSERT_TRUE(session
                  ->Report("2",
                           RatedBatch(g2,
                                      [&](int i) {
                                        const v1::Stimulus& s = g2.stimuli(i);
                                        if (s.origin() != "repeat") return 3.5;
                                        return s.png() == g1.stimuli(5).png() ? 1.0 : 0.0;
                                      }),
                           &ack)
                  .ok());
  v1::Session described = Describe(*session);
  // Pooled: image 5 (5 + 1) / 2 = 3, image 4 (4 + 0) / 2 = 2. Among images
  // shown twice, 5 is best, although six single trials measured 3.5.
  EXPECT_EQ(described.best_measured().stimulus().id(), g1.stimuli(5).id());
  EXPECT_EQ(described.best_measured().presentations(), 2);
  EXPECT_DOUBLE_EQ(described.best_measured().mean_objective(), 3.0);

  v1::ListStimuliResponse best;
  ASSERT_TRUE(session->BestStimuli(3, /*include_png=*/false, &best).ok());
  ASSERT_EQ(best.stimuli_size(), 3);
  // The first is best_measured; images shown twice lead, single trials follow.
  EXPECT_EQ(best.stimuli(0).stimulus().id(), g1.stimuli(5).id());
  EXPECT_DOUBLE_EQ(best.stimuli(0).mean_objective(), 3.0);
  EXPECT_DOUBLE_EQ(best.stimuli(1).mean_objective(), 2.0);
  EXPECT_DOUBLE_EQ(best.stimuli(2).mean_objective(), 3.5) << "by mean, each image once";
  for (const v1::StimulusRecord& r : best.stimuli()) {
    EXPECT_NE(r.stimulus().origin(), "repeat") << "a repeat is listed as the image it shows";
  }

  v1::SessionStats stats;
  session->Stats(&stats);
  EXPECT_EQ(stats.generations(1).stimuli(), 6) << "repeats are not the optimizer's stimuli";
  EXPECT_DOUBLE_EQ(stats.generations(1).max_objective(), 3.5);

  // Generation 3 repeats the two best images shown fewer than 3 times:
  // g2's first new stimuli (3.5 each, ties by first showing) now lead.
  ASSERT_TRUE(session->Next(0, &g3).ok());
  std::vector<std::string> third;
  for (const v1::Stimulus& s : g3.stimuli()) {
    if (s.origin() == "repeat") third.push_back(s.png());
  }
  std::vector<std::string> new_in_g2;
  for (const v1::Stimulus& s : g2.stimuli()) {
    if (s.origin() != "repeat") new_in_g2.push_back(s.png());
  }
  ASSERT_EQ(third.size(), 2u);
  EXPECT_EQ(third[0], new_in_g2[0]);
  EXPECT_EQ(third[1], new_in_g2[1]);
  // The optimizer heard nothing of the repeats' ids: it goes on.
  ASSERT_TRUE(session->Report("3", RatedBatch(g3, [](int) { return 0.0; }), &ack).ok());
  ASSERT_TRUE(session->Next(0, &g4).ok());
  EXPECT_EQ(g4.stimuli_size(), 8);
}

TEST_F(SessionTest, ImagesAtTheirPresentationLimitAreNotRepeated) {
  v1::SessionConfig config = Config();
  config.mutable_optimizer()->set_name("random");
  config.set_generation_size(2);
  config.mutable_repeats()->set_per_generation(1);
  config.mutable_repeats()->set_max_presentations(2);
  auto session = Create(config);
  v1::StimulusBatch g1, g2, g3;
  v1::ReportResponsesAck ack;
  ASSERT_TRUE(session->Next(0, &g1).ok());
  ASSERT_TRUE(session->Report("1", RatedBatch(g1, [](int i) { return 10.0 - i; }), &ack).ok());
  ASSERT_TRUE(session->Next(0, &g2).ok());
  ASSERT_EQ(g2.stimuli_size(), 3);
  ASSERT_TRUE(session->Report("2", RatedBatch(g2, [](int) { return 9.5; }), &ack).ok());
  // g1's first image now has 2 presentations (mean 9.75): at the limit. The
  // next best shown once is repeated instead.
  ASSERT_TRUE(session->Next(0, &g3).ok());
  int repeats = 0;
  for (const v1::Stimulus& s : g3.stimuli()) {
    if (s.origin() != "repeat") continue;
    ++repeats;
    EXPECT_NE(s.png(), g1.stimuli(0).png());
  }
  EXPECT_EQ(repeats, 1);
}

TEST_F(SessionTest, BadRepeatSettingsNameTheField) {
  struct Case {
    int per_generation, max_presentations;
    std::string message;
  };
  for (const Case& c : {Case{7, 0, "config.repeats.per_generation: 7 is outside [0, 6]"},
                        Case{-1, 0, "config.repeats.per_generation: -1 is outside [0, 6]"},
                        Case{1, 1, "config.repeats.max_presentations: 1 is outside [2, 1000]"},
                        Case{1, 1001,
                             "config.repeats.max_presentations: 1001 is outside [2, 1000]"}}) {
    v1::SessionConfig config = Config();
    config.mutable_repeats()->set_per_generation(c.per_generation);
    config.mutable_repeats()->set_max_presentations(c.max_presentations);
    auto session = manager_.Create(config);
    ASSERT_FALSE(session.ok()) << c.message;
    EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(session.status().message()), c.message);
  }
}

TEST_F(SessionTest, MissingReferenceFolderIsInvalid) {
  std::filesystem::create_directories(AssetsFolder());
  v1::SessionConfig config = Config();
  config.mutable_reference_images()->set_dir("no/such/folder");
  config.mutable_reference_images()->set_per_generation(1);
  auto session = manager_.Create(config);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(session.status().message(),
            "config.reference_images.dir: 'no/such/folder' does not exist in the server's "
            "assets folder (--assets_dir)");
  std::filesystem::remove_all(AssetsFolder());
}

TEST_F(SessionTest, ReferenceFolderOutsideTheAssetsFolderIsRefused) {
  // The manager confines request paths: an absolute one is refused before
  // anything is read, even when the folder exists.
  const auto dir = std::filesystem::temp_directory_path();
  v1::SessionConfig config = Config();
  config.mutable_reference_images()->set_dir(dir.string());
  config.mutable_reference_images()->set_per_generation(1);
  auto session = manager_.Create(config);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(session.status().message()),
              HasSubstr("config.reference_images.dir: '" + dir.string() + "' is absolute"));
  EXPECT_TRUE(manager_.List().empty());
}

TEST_F(SessionTest, TooManyOpenSessionsIsResourceExhausted) {
  for (int i = 0; i < 4; ++i) ASSERT_NE(Create(Config(i)), nullptr);
  auto fifth = manager_.Create(Config(9));
  ASSERT_FALSE(fifth.ok());
  EXPECT_EQ(fifth.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(fifth.status().message()), HasSubstr("--max_open_sessions"));
  // Closing one makes room.
  ASSERT_TRUE(manager_.List().front()->Close().ok());
  EXPECT_TRUE(manager_.Create(Config(9)).ok());
}

// A journal that fails on demand, to show a failed write changes nothing.
class FailingJournal : public InMemoryJournal {
 public:
  bool fail = false;
  absl::Status GenerationProposed(const std::string& a, int64_t b,
                                  absl::Span<const StimulusEntry> c, const std::string& d,
                                  int64_t e, size_t f) override {
    return fail ? absl::UnavailableError("disk full") : absl::OkStatus();
  }
  absl::Status ResponsesReported(const std::string&, const std::string&, const std::string&,
                                 absl::Span<const ResponseEntry>, const v1::ReportResponsesAck&,
                                 absl::Time) override {
    return fail ? absl::UnavailableError("disk full") : absl::OkStatus();
  }
};

// Counts what the session journals about hand-outs.
class CountingJournal : public InMemoryJournal {
 public:
  std::vector<size_t> handed_out_with_generation;  // per GenerationProposed
  std::vector<size_t> handed_out_alone;            // per StimuliHandedOut
  absl::Status GenerationProposed(const std::string&, int64_t, absl::Span<const StimulusEntry>,
                                  const std::string&, int64_t, size_t handed_out) override {
    handed_out_with_generation.push_back(handed_out);
    return absl::OkStatus();
  }
  absl::Status StimuliHandedOut(const std::string&, absl::Span<const std::string> ids) override {
    handed_out_alone.push_back(ids.size());
    return absl::OkStatus();
  }
};

// The NextStimuli that proposes a generation journals its own hand-out in
// the generation's transaction (one commit at a boundary); later calls
// journal theirs alone.
TEST(SessionJournalTest, TheBatchThatProposesAGenerationIsJournaledWithIt) {
  CountingJournal journal;
  SessionManager manager(&journal, 1);
  auto session = manager.Create(Config(3));  // generations of 6
  ASSERT_TRUE(session.ok()) << session.status();
  v1::StimulusBatch first, second, third;
  ASSERT_TRUE((*session)->Next(2, &first).ok());
  EXPECT_EQ(first.stimuli_size(), 2);
  EXPECT_EQ(journal.handed_out_with_generation, std::vector<size_t>({2}));
  EXPECT_TRUE(journal.handed_out_alone.empty());
  ASSERT_TRUE((*session)->Next(0, &second).ok());
  EXPECT_EQ(second.stimuli_size(), 4);
  EXPECT_EQ(journal.handed_out_alone, std::vector<size_t>({4}));
  EXPECT_TRUE(absl::EndsWith(second.stimuli(0).id(), "-3")) << second.stimuli(0).id();

  // Answer all six; the next call proposes generation 2 and takes it whole.
  v1::ReportResponsesAck ack;
  std::vector<std::pair<std::string, std::vector<double>>> answers;
  for (const auto* batch : {&first, &second}) {
    for (const v1::Stimulus& s : batch->stimuli()) answers.push_back({s.id(), {5, 1}});
  }
  ASSERT_TRUE((*session)->Report("all", Responses(answers), &ack).ok());
  ASSERT_TRUE((*session)->Next(0, &third).ok());
  EXPECT_EQ(third.generation(), 2);
  EXPECT_EQ(third.stimuli_size(), 6);
  EXPECT_EQ(journal.handed_out_with_generation, std::vector<size_t>({2, 6}));
  EXPECT_EQ(journal.handed_out_alone, std::vector<size_t>({4}));
}

TEST(SessionJournalTest, FailedWritesLeaveTheSessionUnchanged) {
  FailingJournal journal;
  SessionManager manager(&journal, 1);
  auto session = manager.Create(Config(3));
  ASSERT_TRUE(session.ok());
  v1::StimulusBatch first;
  ASSERT_TRUE((*session)->Next(0, &first).ok());
  v1::ReportResponsesAck ack;

  journal.fail = true;
  EXPECT_EQ((*session)->Report("r", Responses({{first.stimuli(0).id(), {5, 0}}}), &ack).code(),
            absl::StatusCode::kUnavailable);
  v1::StimulusBatch failed;
  EXPECT_EQ((*session)->Next(0, &failed).code(), absl::StatusCode::kUnavailable);
  journal.fail = false;

  // The same report and generation as a session that never failed.
  InMemoryJournal clean_journal;
  SessionManager clean_manager(&clean_journal, 1);
  auto clean = clean_manager.Create(Config(3));
  v1::StimulusBatch clean_first;
  ASSERT_TRUE((*clean)->Next(0, &clean_first).ok());
  ASSERT_TRUE((*session)->Report("r", Responses({{first.stimuli(0).id(), {5, 0}}}), &ack).ok());
  EXPECT_EQ(ack.counts().responses(), 1);
  ASSERT_TRUE(
      (*clean)->Report("r", Responses({{clean_first.stimuli(0).id(), {5, 0}}}), &ack).ok());
  v1::StimulusBatch second, clean_second;
  ASSERT_TRUE((*session)->Next(0, &second).ok());
  ASSERT_TRUE((*clean)->Next(0, &clean_second).ok());
  ASSERT_EQ(second.stimuli_size(), clean_second.stimuli_size());
  for (int i = 0; i < second.stimuli_size(); ++i) {
    EXPECT_EQ(second.stimuli(i).png(), clean_second.stimuli(i).png()) << i;
  }
}

}  // namespace
}  // namespace stimloop
