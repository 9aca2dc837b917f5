#include "base/echo.h"

#include "absl/strings/str_cat.h"

namespace stimloop {
namespace {

// The escaped form of one byte (see Echo).
std::string Escaped(unsigned char c) {
  switch (c) {
    case '\\':
      return "\\\\";
    case '\'':
      return "\\'";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    default:
      if (c >= 0x20 && c <= 0x7e) return std::string(1, static_cast<char>(c));
      constexpr char kHex[] = "0123456789abcdef";
      return {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
  }
}

// The escaped prefix of `value` that fits kMaxEchoedChars, and whether it
// holds all of `value`.
std::string EscapedPrefix(absl::string_view value, bool* whole) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string piece = Escaped(static_cast<unsigned char>(value[i]));
    if (out.size() + piece.size() > kMaxEchoedChars) {
      *whole = false;
      return out;
    }
    out += piece;
  }
  *whole = true;
  return out;
}

}  // namespace

std::string Echo(absl::string_view value) {
  bool whole = true;
  std::string out = EscapedPrefix(value, &whole);
  if (whole) return out;
  return absl::StrCat(out, "... (", value.size(), " bytes)");
}

std::string QuotedEcho(absl::string_view value) {
  bool whole = true;
  const std::string out = EscapedPrefix(value, &whole);
  if (whole) return absl::StrCat("'", out, "'");
  return absl::StrCat("'", out, "...' (", value.size(), " bytes)");
}

}  // namespace stimloop
