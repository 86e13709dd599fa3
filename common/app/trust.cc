// The device's trust decision on a bundle's signatures (bundle.h).
#include "common/app/bundle.h"

namespace herd::app {

Result<std::vector<std::string>> CheckSignatures(const BundleHead& head,
                                                 const std::vector<PublicKey>& trusted) {
  if (head.signatures.empty()) {
    return Status(StatusCode::kPermissionDenied,
                  "not signed (herd app sign FILE --key KEY adds a signature)");
  }
  std::vector<std::string> verified, unknown;
  for (const auto& sig : head.signatures) {
    auto info = ReadSignature(sig);
    if (!info.ok()) return Status(StatusCode::kPermissionDenied, info.status().message());
    const PublicKey* key = nullptr;
    for (const auto& k : trusted) {
      if (k.id == info->key_id) key = &k;
    }
    const std::string id = KeyIdHex(info->key_id);
    if (!key) {
      unknown.push_back(id);
      continue;
    }
    auto ok = Verify(*key, head.manifest_text, sig);
    if (!ok.ok()) {
      return Status(StatusCode::kPermissionDenied,
                    "bad signature by trusted key " + id + ": " + ok.status().message());
    }
    verified.push_back(id);
  }
  if (verified.empty()) {
    std::string ids;
    for (const auto& id : unknown) ids += (ids.empty() ? "" : ", ") + id;
    return Status(StatusCode::kPermissionDenied,
                  "signed only by keys this device does not trust: " + ids +
                      " (apps.publishers in its agent config)");
  }
  return verified;
}

}  // namespace herd::app
