// stimloop-inspect: reads a session store directly (read-only; safe while
// the server runs) and lists, summarizes, exports or reports sessions.
//
//   stimloop-inspect list   --data_dir=D
//   stimloop-inspect show   --data_dir=D SESSION
//   stimloop-inspect top    --data_dir=D SESSION --k=10 --out=DIR
//   stimloop-inspect export --data_dir=D SESSION --out=DIR
//   stimloop-inspect report --data_dir=D SESSION --out=FILE.html
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "clients/inspect/export.h"
#include "clients/inspect/report_html.h"
#include "clients/inspect/session_stats.h"
#include "clients/inspect/store_reader.h"
#include "clients/inspect/text_views.h"

ABSL_FLAG(std::string, data_dir, "stimloop-data", "the server's data directory");
ABSL_FLAG(std::string, store, "",
          "a PostgreSQL store's libpq URI (postgresql://user@host:port/dbname), as the "
          "servers' --store; empty: the SQLite store in --data_dir");
ABSL_FLAG(std::string, out, "", "output folder (top, export) or HTML file (report)");
ABSL_FLAG(int, k, 10, "top: how many stimuli");
ABSL_FLAG(int, best, 24, "report: cells in the best-stimuli grid");

namespace stimloop {
namespace inspect {
namespace {

constexpr char kUsage[] =
    "reads a stimloop session store (read-only).\n"
    "  stimloop-inspect list   --data_dir=D\n"
    "  stimloop-inspect show   --data_dir=D SESSION\n"
    "  stimloop-inspect top    --data_dir=D SESSION --k=10 --out=DIR\n"
    "  stimloop-inspect export --data_dir=D SESSION --out=DIR\n"
    "  stimloop-inspect report --data_dir=D SESSION --out=FILE.html\n"
    "Instead of --data_dir, --store=postgresql://... reads a PostgreSQL store.";

absl::Status Run(const std::vector<std::string>& args) {
  if (args.empty())
    return absl::InvalidArgumentError("missing command (list, show, top, export, report)");
  const std::string& command = args[0];
  const std::string store = absl::GetFlag(FLAGS_store);
  if (!store.empty() && store.rfind("postgresql://", 0) != 0 && store.rfind("postgres://", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--store: expected a PostgreSQL URI (postgresql://...), got '", store, "'"));
  }
  auto reader = store.empty() ? StoreReader::Open(absl::GetFlag(FLAGS_data_dir))
                              : StoreReader::OpenPostgres(store);
  if (!reader.ok()) return reader.status();
  if (command == "list") {
    if (args.size() != 1) return absl::InvalidArgumentError("list takes no arguments");
    auto sessions = (*reader)->ListSessions();
    if (!sessions.ok()) return sessions.status();
    std::cout << FormatSessionList(*sessions);
    return absl::OkStatus();
  }
  if (command != "show" && command != "top" && command != "export" && command != "report") {
    return absl::InvalidArgumentError(absl::StrCat("unknown command '", command, "'"));
  }
  if (args.size() != 2) return absl::InvalidArgumentError(absl::StrCat(command, ": needs SESSION"));
  const std::string out = absl::GetFlag(FLAGS_out);
  if (command != "show" && out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(command, ": --out is required"));
  }
  auto data = (*reader)->LoadSession(args[1]);
  if (!data.ok()) return data.status();
  auto stats = ComputeStats(*data);
  if (!stats.ok()) return stats.status();
  if (command == "show") {
    std::cout << FormatSessionShow(*data, *stats);
    return absl::OkStatus();
  }
  if (command == "top") return WriteTopStimuli(*data, *stats, absl::GetFlag(FLAGS_k), out);
  if (command == "export") return ExportSession(*data, *stats, out);
  ReportOptions options;
  options.best_stimuli = absl::GetFlag(FLAGS_best);
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  file << RenderReportHtml(*data, *stats, options);
  file.close();
  if (!file) return absl::InternalError(absl::StrCat("--out: cannot write '", out, "'"));
  return absl::OkStatus();
}

}  // namespace
}  // namespace inspect
}  // namespace stimloop

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(stimloop::inspect::kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  absl::Status status = stimloop::inspect::Run(args);
  if (!status.ok()) {
    std::cerr << "stimloop-inspect: " << status.message() << "\n"
              << stimloop::inspect::kUsage << "\n";
    return 1;
  }
  return 0;
}
