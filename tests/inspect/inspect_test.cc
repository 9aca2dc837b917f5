// stimloop-inspect against a store written by the real server: a short
// closed-loop session (simulated rig, reference images, three neurons under
// population control) and a hand-driven session with known rates and a
// skipped trial. The store is read while the server still runs.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "clients/closed_loop.h"
#include "clients/inspect/export.h"
#include "clients/inspect/report_html.h"
#include "clients/inspect/session_stats.h"
#include "clients/inspect/store_reader.h"
#include "clients/inspect/text_views.h"
#include "clients/simulated_rig.h"
#include "tests/integration/test_server.h"
#include "tests/server/store_test_util.h"

namespace stimloop {
namespace inspect {
namespace {

constexpr int kLoopResponses = 120;

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

v1::SessionConfig PopulationConfig(const std::string& reference_dir) {
  v1::SessionConfig config = SmallConfig(7);
  config.set_num_neurons(3);
  config.mutable_objective()->mutable_population_control()->set_target(0);
  config.mutable_objective()->mutable_population_control()->set_others_weight(0.5);
  (*config.mutable_metadata())["subject"] = "M1";
  (*config.mutable_metadata())["site"] = "V1 array 2";
  // Repeats on: "best" then depends on presentations, which the tools must
  // count as the server does.
  config.mutable_repeats()->set_per_generation(2);
  if (!reference_dir.empty()) {
    config.mutable_reference_images()->set_dir(reference_dir);
    config.mutable_reference_images()->set_per_generation(2);
  }
  return config;
}

// The stored PNG of a stimulus, read with plain SQLite (not StoreReader).
std::string StoredPng(const std::string& data_dir, const std::string& stimulus_id) {
  sqlite3* db = nullptr;
  std::string png;
  if (sqlite3_open_v2((data_dir + "/stimloop.sqlite").c_str(), &db, SQLITE_OPEN_READONLY,
                      nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "SELECT png FROM stimuli WHERE id = ?", -1, &stmt, nullptr);
    sqlite3_bind_text(stmt, 1, stimulus_id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      png.assign(static_cast<const char*>(sqlite3_column_blob(stmt, 0)),
                 sqlite3_column_bytes(stmt, 0));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return png;
}

class InspectTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = new std::string(FreshTempDir("inspect"));
    // The server's assets folder is the work folder: the session names its
    // reference images relative to it.
    const std::string references = *work_ + "/references";
    std::filesystem::create_directories(references);
    for (int i = 0; i < 2; ++i) {
      cv::Mat image(32, 32, CV_8UC1, cv::Scalar(60 + 120 * i));
      cv::rectangle(image, cv::Rect(8, 8, 16, 16), cv::Scalar(255 - 100 * i), -1);
      ASSERT_TRUE(cv::imwrite(references + "/ref" + std::to_string(i) + ".png", image));
    }
    server_ = StartTestServer("inspect-server", {"--assets_dir=" + *work_}).release();
    ASSERT_NE(server_, nullptr);
    auto client = ConnectTo(*server_);
    ASSERT_NE(client, nullptr);

    auto loop = client->CreateSession(PopulationConfig("references"));
    ASSERT_TRUE(loop.ok()) << loop.status();
    SimulatedNeuronSpec spec;
    spec.height = spec.width = 32;
    spec.seed = 7;
    auto population = SimulatedPopulation::Create(spec, 3, true);
    ASSERT_TRUE(population.ok()) << population.status();
    SimulatedRig rig(*std::move(population), 0.2, 7);
    ClosedLoopOptions options;
    options.responses = kLoopResponses;
    auto result = RunClosedLoop(*client, rig, loop->id(), 0, options);
    ASSERT_TRUE(result.ok()) << result.status();
    loop_ = new v1::Session(result->session);

    // By hand: one measured stimulus with known rates, one skipped trial.
    auto manual = client->CreateSession(PopulationConfig(""));
    ASSERT_TRUE(manual.ok()) << manual.status();
    auto batch = client->NextStimuli(manual->id(), 3);
    ASSERT_TRUE(batch.ok()) << batch.status();
    v1::Response measured, skipped;
    measured.set_stimulus_id(batch->stimuli(0).id());
    for (double r : {10.0, 2.0, 4.0}) measured.add_rates(r);
    skipped.set_stimulus_id(batch->stimuli(1).id());
    skipped.set_skipped(true);
    ASSERT_TRUE(client->ReportResponses(manual->id(), "trial-1", {measured, skipped}).ok());
    manual_ = new v1::Session(*client->GetSession(manual->id()));
  }

  static void TearDownTestSuite() {
    delete server_;  // stops the server
    server_ = nullptr;
    // Keep the files for a look when something failed.
    if (::testing::UnitTest::GetInstance()->failed_test_count() == 0) {
      std::filesystem::remove_all(*work_);
      std::filesystem::remove_all(std::filesystem::path(DataDir()).parent_path());
    } else {
      std::cerr << "inspect_test: files kept in " << *work_ << "\n";
    }
  }

  // The data directory StartTestServer gave the server.
  static std::string DataDir() {
    return (std::filesystem::temp_directory_path() /
            ("stimloop-test-inspect-server-" + std::to_string(::getpid())) / "data")
        .string();
  }

  static SessionData Load(const std::string& id) {
    auto reader = StoreReader::Open(DataDir());
    EXPECT_TRUE(reader.ok()) << reader.status();
    auto data = (*reader)->LoadSession(id);
    EXPECT_TRUE(data.ok()) << data.status();
    return *std::move(data);
  }

  static std::string* work_;
  static ServerProcess* server_;
  static v1::Session* loop_;
  static v1::Session* manual_;
};

std::string* InspectTest::work_ = nullptr;
ServerProcess* InspectTest::server_ = nullptr;
v1::Session* InspectTest::loop_ = nullptr;
v1::Session* InspectTest::manual_ = nullptr;

TEST_F(InspectTest, ListShowsBothSessionsWithServerCounts) {
  auto reader = StoreReader::Open(DataDir());
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto sessions = (*reader)->ListSessions();
  ASSERT_TRUE(sessions.ok()) << sessions.status();
  ASSERT_EQ(sessions->size(), 2u);
  const SessionSummary& loop = (*sessions)[0];
  EXPECT_EQ(loop.id, loop_->id());
  EXPECT_EQ(loop.subject, "M1");
  EXPECT_EQ(loop.site, "V1 array 2");
  EXPECT_EQ(loop.optimizer, "genetic");
  EXPECT_EQ(loop.status, "open");
  EXPECT_EQ(loop.generations, loop_->counts().generations());
  EXPECT_EQ(loop.stimuli, loop_->counts().stimuli());
  EXPECT_EQ(loop.responses, loop_->counts().responses());
  EXPECT_EQ((*sessions)[1].skipped, 1);
  const std::string text = FormatSessionList(*sessions);
  EXPECT_EQ(Lines(text).size(), 3u);
  EXPECT_TRUE(absl::StrContains(text, loop_->id())) << text;
  EXPECT_TRUE(absl::StrContains(text, "V1 array 2")) << text;
}

TEST_F(InspectTest, ShowComputesThePopulationControlObjective) {
  const SessionData data = Load(manual_->id());
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->generations.size(), 1u);
  // 10 - 0.5 * mean(2, 4) = 8.5; the skipped stimulus is not measured.
  EXPECT_DOUBLE_EQ(stats->generations[0].mean_objective, 8.5);
  EXPECT_DOUBLE_EQ(stats->generations[0].max_objective, 8.5);
  EXPECT_EQ(stats->generations[0].measured, 1);
  const std::string text = FormatSessionShow(data, *stats);
  EXPECT_TRUE(absl::StrContains(text, "8.5")) << text;
}

TEST_F(InspectTest, ShowHasOneLinePerGenerationAndReferenceSummaries) {
  const SessionData data = Load(loop_->id());
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(static_cast<int64_t>(stats->generations.size()), loop_->counts().generations());
  int with_reference = 0;
  for (const GenerationStats& g : stats->generations) {
    if (g.reference_presentations > 0) ++with_reference;
  }
  EXPECT_GE(with_reference, static_cast<int>(stats->generations.size()) - 1);
  // The best stimulus agrees with the server's own best_measured.
  auto top = TopStimuli(*stats, 1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_NEAR(top[0]->mean_objective, loop_->best_measured().mean_objective(), 1e-9);
  EXPECT_EQ(top[0]->stimulus->id, loop_->best_measured().stimulus().id());
  EXPECT_NEAR(stats->generations.back().best_so_far, loop_->best_measured().mean_objective(),
              1e-9);
  const std::string text = FormatSessionShow(data, *stats);
  // Header (3 lines), the column line, one line per generation.
  EXPECT_EQ(static_cast<int64_t>(Lines(text).size()), 4 + loop_->counts().generations()) << text;
}

TEST_F(InspectTest, TopWritesTheStoredPngBytesAndAnIndex) {
  const SessionData data = Load(loop_->id());
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok());
  const std::string out = *work_ + "/top";
  ASSERT_TRUE(WriteTopStimuli(data, *stats, 5, out).ok());
  const auto rows = Lines(ReadAll(out + "/top.csv"));
  ASSERT_EQ(rows.size(), 6u);
  double previous = 1e300;
  for (size_t i = 1; i < rows.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(rows[i], ',');
    ASSERT_EQ(cells.size(), 7u) << rows[i];
    const std::string png = ReadAll(out + "/" + cells[6]);
    EXPECT_EQ(png, StoredPng(DataDir(), cells[1]));
    cv::Mat image = cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_UNCHANGED);
    EXPECT_EQ(image.rows, 32);
    const double score = std::stod(cells[4]);
    EXPECT_LE(score, previous);
    previous = score;
  }
}

TEST_F(InspectTest, ExportWritesEveryStimulusResponseAndTheConfig) {
  for (const v1::Session* session : {loop_, manual_}) {
    const SessionData data = Load(session->id());
    auto stats = ComputeStats(data);
    ASSERT_TRUE(stats.ok());
    const std::string out = *work_ + "/export-" + session->id();
    ASSERT_TRUE(ExportSession(data, *stats, out).ok());
    const auto responses = Lines(ReadAll(out + "/responses.csv"));
    ASSERT_EQ(static_cast<int64_t>(responses.size()),
              1 + session->counts().responses() + session->counts().skipped());
    EXPECT_EQ(responses[0],
              "stimulus_id,generation,origin,is_reference,request_id,received,skipped,objective,"
              "rate_0,rate_1,rate_2");
    const auto stimuli = Lines(ReadAll(out + "/stimuli.csv"));
    ASSERT_EQ(static_cast<int64_t>(stimuli.size()), 1 + session->counts().stimuli());
    for (const StoredStimulus& s : data.stimuli) {
      const std::string png = ReadAll(out + "/stimuli/" + s.id + ".png");
      ASSERT_EQ(png, StoredPng(DataDir(), s.id)) << s.id;
      cv::Mat image =
          cv::imdecode(std::vector<uchar>(png.begin(), png.end()), cv::IMREAD_UNCHANGED);
      ASSERT_FALSE(image.empty()) << s.id;
    }
    v1::SessionConfig parsed;
    ASSERT_TRUE(
        google::protobuf::util::JsonStringToMessage(ReadAll(out + "/config.json"), &parsed).ok());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, data.config));
    EXPECT_TRUE(absl::StrContains(ReadAll(out + "/README.txt"), "pd.read_csv"));
  }
  const auto manual = Lines(ReadAll(*work_ + "/export-" + manual_->id() + "/responses.csv"));
  ASSERT_EQ(manual.size(), 3u);
  EXPECT_TRUE(absl::StrContains(manual[1], ",0,8.5,10,2,4")) << manual[1];
  EXPECT_TRUE(absl::StrContains(manual[2], ",1,,,,")) << manual[2];
}

TEST_F(InspectTest, ToolRunsFromTheCommandLine) {
  const char* build = std::getenv("STIMLOOP_BUILD_DIR");
  ASSERT_NE(build, nullptr) << "STIMLOOP_BUILD_DIR is set by ctest";
  const std::string tool = std::string(build) + "/clients/stimloop-inspect";
  const std::string out = *work_ + "/cli-list.txt";
  ASSERT_EQ(
      std::system(("'" + tool + "' list --data_dir='" + DataDir() + "' > '" + out + "'").c_str()),
      0);
  EXPECT_TRUE(absl::StrContains(ReadAll(out), manual_->id()));
  EXPECT_NE(
      std::system(("'" + tool + "' show --data_dir='" + DataDir() + "' no-such-session 2>/dev/null")
                      .c_str()),
      0);
}

TEST_F(InspectTest, ReportRendersInHeadlessChromium) {
  const SessionData data = Load(loop_->id());
  auto stats = ComputeStats(data);
  ASSERT_TRUE(stats.ok());
  ReportOptions options;
  options.best_stimuli = 12;
  const std::string html_path = *work_ + "/report.html";
  {
    std::ofstream html(html_path);
    html << RenderReportHtml(data, *stats, options);
  }
  const std::string html = ReadAll(html_path);
  // Self-contained: no remote or relative resources.
  EXPECT_FALSE(absl::StrContains(html, "src=\"http"));
  EXPECT_FALSE(absl::StrContains(html, "href="));
  EXPECT_FALSE(absl::StrContains(html, "url("));
  EXPECT_FALSE(absl::StrContains(html, "<script"));
  EXPECT_FALSE(absl::StrContains(html, "<link"));

  std::string chromium;
  for (const char* candidate : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (std::filesystem::exists(candidate)) chromium = candidate;
  }
  if (chromium.empty()) {
    GTEST_SKIP() << "chromium is not installed (Debian package `chromium`, see "
                    "scripts/install-deps.sh): the report was written but not rendered";
  }
  const std::string flags = absl::StrCat(
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
      " --disable-background-networking --disable-component-update --disable-sync"
      " --user-data-dir='",
      *work_, "/chromium-profile-");
  const std::string dom_path = *work_ + "/dom.html";
  ASSERT_EQ(std::system((chromium + flags + "dom' --dump-dom 'file://" + html_path + "' > '" +
                         dom_path + "' 2>" + *work_ + "/chromium-dom.log")
                            .c_str()),
            0)
      << ReadAll(*work_ + "/chromium-dom.log");
  const std::string dom = ReadAll(dom_path);
  EXPECT_TRUE(absl::StrContains(dom, "<span id=\"session-id\">" + loop_->id() + "</span>"));
  EXPECT_EQ(Count(dom, "<svg class=\"chart\""), 2);  // progress + reference curves
  EXPECT_EQ(Count(dom, "class=\"best-stimulus\""), 12);
  EXPECT_EQ(Count(dom, "src=\"data:image/png;base64,"), 12);
  EXPECT_TRUE(absl::StrContains(dom, "No surrogate model"));
  EXPECT_TRUE(absl::StrContains(dom, "population_control"));

  const std::string shot = *work_ + "/report.png";
  ASSERT_EQ(std::system((chromium + flags + "shot' --screenshot='" + shot +
                         "' --window-size=1200,1600 'file://" + html_path + "' 2>" + *work_ +
                         "/chromium-shot.log")
                            .c_str()),
            0)
      << ReadAll(*work_ + "/chromium-shot.log");
  cv::Mat image = cv::imread(shot, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty()) << "no screenshot at " << shot;
  EXPECT_EQ(image.cols, 1200);
  EXPECT_EQ(image.rows, 1600);
  cv::Scalar mean, stddev;
  cv::meanStdDev(image, mean, stddev);
  EXPECT_GT(stddev[0] + stddev[1] + stddev[2], 30.0) << "the screenshot is nearly uniform";
}

// A stored PNG damaged while the database stays valid: the reader says which
// session and stimulus, and the tool fails with that message, never showing
// the damaged image as data.
TEST(InspectStoreTest, DamagedPngIsDataLossNamingSessionAndStimulus) {
  const std::string dir = FreshTempDir("inspect-damaged");
  std::string id;
  {
    auto server =
        ServerProcess::Start(DefaultServerBinary(), dir + "/data", dir + "/server.log");
    ASSERT_TRUE(server.ok()) << server.status();
    auto client = ConnectTo(**server);
    ASSERT_NE(client, nullptr);
    auto session = client->CreateSession(SmallConfig(3));
    ASSERT_TRUE(session.ok()) << session.status();
    id = session->id();
    ASSERT_TRUE(client->NextStimuli(id, 0).ok());
    auto stopped = (*server)->Stop();
    ASSERT_TRUE(stopped.ok() && *stopped == 0);
  }
  ASSERT_TRUE(FlipStoredByte(dir + "/data/stimloop.sqlite", "stimuli", "png",
                             "session_id = '" + id + "' AND sequence = 4"));
  const std::string expected =
      "session '" + id + "' stimulus 4: stored png fails its checksum";

  auto reader = StoreReader::Open(dir + "/data");
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto listed = (*reader)->ListSessions();  // the config is intact
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 1u);
  auto data = (*reader)->LoadSession(id);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(data.status().message().rfind(expected, 0), 0u) << data.status();

  const char* build = std::getenv("STIMLOOP_BUILD_DIR");
  ASSERT_NE(build, nullptr) << "STIMLOOP_BUILD_DIR is set by ctest";
  const std::string out = dir + "/show.txt";
  EXPECT_NE(std::system(("'" + std::string(build) + "/clients/stimloop-inspect' show --data_dir='" +
                         dir + "/data' " + id + " > '" + out + "' 2>&1")
                            .c_str()),
            0);
  EXPECT_TRUE(absl::StrContains(ReadAll(out), expected)) << ReadAll(out);
}

}  // namespace
}  // namespace inspect
}  // namespace stimloop
