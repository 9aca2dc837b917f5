// ReportDigest (server/report_digest.h): one digest per content, the same
// from the wire message and from journal entries, and the documented
// encoding (a reader can recompute it, e.g. with Python's hashlib).
#include "server/report_digest.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"

namespace stimloop {
namespace {

google::protobuf::RepeatedPtrField<v1::Response> Wire(const std::vector<ResponseEntry>& entries) {
  google::protobuf::RepeatedPtrField<v1::Response> out;
  for (const ResponseEntry& e : entries) {
    v1::Response* r = out.Add();
    r->set_stimulus_id(e.stimulus_id);
    r->mutable_rates()->Add(e.rates.begin(), e.rates.end());
    r->set_skipped(e.skipped);
  }
  return out;
}

std::string Hex(const std::vector<ResponseEntry>& entries) {
  auto digest = ReportDigest(entries);
  EXPECT_TRUE(digest.ok()) << digest.status();
  return digest.ok() ? absl::BytesToHexString(*digest) : "";
}

TEST(ReportDigestTest, IsSha256OfTheDocumentedEncoding) {
  // hashlib.sha256(struct.pack('<Q', 0)) and the encoding of report_digest.h
  // for two responses, computed in Python.
  EXPECT_EQ(Hex({}), "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
  EXPECT_EQ(Hex({{"ab12cd34-1", {1.0, 2.5}, false}, {"ab12cd34-2", {}, true}}),
            "fe4155af0c7d23b9d1cadc46dd43dbfdbd1cf598e79a914d97ab255d5928d0fc");
}

TEST(ReportDigestTest, WireAndJournalEntriesGiveTheSameDigest) {
  const std::vector<ResponseEntry> entries = {{"s-1", {1.0, 2.5}, false}, {"s-2", {}, true}};
  auto from_entries = ReportDigest(entries);
  auto from_wire = ReportDigest(Wire(entries));
  ASSERT_TRUE(from_entries.ok() && from_wire.ok());
  EXPECT_EQ(from_entries->size(), kReportDigestSize);
  EXPECT_EQ(*from_entries, *from_wire);
}

TEST(ReportDigestTest, AnyChangeOfContentChangesTheDigest) {
  const std::string base = Hex({{"s-1", {1.0, 2.0}, false}, {"s-2", {}, true}});
  EXPECT_NE(Hex({{"s-1", {1.0, 2.0}, false}}), base);                      // fewer
  EXPECT_NE(Hex({{"s-2", {}, true}, {"s-1", {1.0, 2.0}, false}}), base);   // order
  EXPECT_NE(Hex({{"s-3", {1.0, 2.0}, false}, {"s-2", {}, true}}), base);   // stimulus
  EXPECT_NE(Hex({{"s-1", {1.0, 2.5}, false}, {"s-2", {}, true}}), base);   // rate
  EXPECT_NE(Hex({{"s-1", {1.0, 2.0}, false}, {"s-2", {}, false}}), base);  // skipped
  EXPECT_NE(Hex({{"s-1", {1.0}, false}, {"s-2", {2.0}, true}}), base);     // split
  EXPECT_NE(Hex({{"s-", {1.0, 2.0}, false}, {"1s-2", {}, true}}), base);   // boundary
  // -0 and +0 are one value.
  EXPECT_EQ(Hex({{"s-1", {-0.0}, false}}), Hex({{"s-1", {0.0}, false}}));
}

}  // namespace
}  // namespace stimloop
