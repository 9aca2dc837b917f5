// Echo / QuotedEcho (base/echo.h): client values in error messages come
// back short and printable.
#include "base/echo.h"

#include <gtest/gtest.h>

#include <string>

namespace stimloop {
namespace {

TEST(EchoTest, ShortPrintableValuesComeBackAsTheyAre) {
  EXPECT_EQ(Echo("abc-12"), "abc-12");
  EXPECT_EQ(QuotedEcho("abc-12"), "'abc-12'");
  EXPECT_EQ(QuotedEcho(""), "''");
  const std::string exactly(kMaxEchoedChars, 'x');
  EXPECT_EQ(QuotedEcho(exactly), "'" + exactly + "'");
}

TEST(EchoTest, LongValuesAreCutWithAnEllipsisAndTheirSize) {
  const std::string megabyte(1 << 20, 'a');
  EXPECT_EQ(QuotedEcho(megabyte), "'" + std::string(kMaxEchoedChars, 'a') + "...' (1048576 bytes)");
  EXPECT_EQ(Echo(megabyte), std::string(kMaxEchoedChars, 'a') + "... (1048576 bytes)");
  EXPECT_EQ(Echo(std::string(kMaxEchoedChars + 1, 'b')),
            std::string(kMaxEchoedChars, 'b') + "... (65 bytes)");
}

TEST(EchoTest, NonPrintableBytesAndQuotesAreEscaped) {
  EXPECT_EQ(QuotedEcho(std::string("a\0b", 3)), "'a\\x00b'");
  EXPECT_EQ(Echo("line\nnext\ttab\r"), "line\\nnext\\ttab\\r");
  EXPECT_EQ(QuotedEcho("it's a \\ path"), "'it\\'s a \\\\ path'");
  EXPECT_EQ(Echo("\xc3\xa9\xff\x7f"), "\\xc3\\xa9\\xff\\x7f");  // never invalid UTF-8
}

TEST(EchoTest, CutNeverSplitsAnEscape) {
  // 63 plain characters, then a byte escaped as four: it does not fit.
  const std::string value = std::string(kMaxEchoedChars - 1, 'c') + "\x01" + "tail";
  EXPECT_EQ(Echo(value), std::string(kMaxEchoedChars - 1, 'c') + "... (68 bytes)");
}

}  // namespace
}  // namespace stimloop
