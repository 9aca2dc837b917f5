#include "server/report_digest.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <memory>

namespace stimloop {
namespace {

// Feeds the canonical encoding (see report_digest.h) to SHA-256.
class Digester {
 public:
  explicit Digester(size_t responses) : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
    Number(responses);
  }

  void Response(absl::string_view stimulus_id, bool skipped, absl::Span<const double> rates) {
    Number(stimulus_id.size());
    Bytes(stimulus_id.data(), stimulus_id.size());
    const uint8_t flag = skipped ? 1 : 0;
    Bytes(&flag, 1);
    Number(rates.size());
    for (double rate : rates) {
      const double canonical = rate + 0.0;  // -0 becomes +0
      uint64_t bits = 0;
      std::memcpy(&bits, &canonical, sizeof(bits));
      Number(bits);
    }
  }

  // libcrypto fails only without memory (or without SHA-256, which every
  // build has).
  absl::StatusOr<std::string> Finish() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), digest, &size) != 1 || size != kReportDigestSize) {
      return absl::InternalError("report digest: OpenSSL SHA-256 failed");
    }
    return std::string(reinterpret_cast<const char*>(digest), size);
  }

 private:
  void Number(uint64_t value) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * i));
    Bytes(bytes, sizeof(bytes));
  }
  void Bytes(const void* data, size_t size) {
    if (ok_ && size > 0) ok_ = EVP_DigestUpdate(ctx_.get(), data, size) == 1;
  }

  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
  bool ok_ = false;
};

}  // namespace

absl::StatusOr<std::string> ReportDigest(
    const google::protobuf::RepeatedPtrField<v1::Response>& responses) {
  Digester digester(static_cast<size_t>(responses.size()));
  for (const v1::Response& r : responses) {
    digester.Response(r.stimulus_id(), r.skipped(),
                      absl::Span<const double>(r.rates().data(), r.rates_size()));
  }
  return digester.Finish();
}

absl::StatusOr<std::string> ReportDigest(absl::Span<const ResponseEntry> responses) {
  Digester digester(responses.size());
  for (const ResponseEntry& r : responses) digester.Response(r.stimulus_id, r.skipped, r.rates);
  return digester.Finish();
}

}  // namespace stimloop
