// libFuzzer target: app.yaml and the manifest's JSON, from any bytes. Every
// input must end in a value or an error, never a crash, a leak or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/app/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = herd::app::ParseAppYaml(text, "fuzz.yaml");
  auto manifest = herd::app::ParseManifest(text, "fuzz.json");
  if (manifest.ok()) {
    // What parses is canonical: it prints back to the same bytes.
    if (herd::app::CanonicalJson(*manifest) != text) __builtin_trap();
  }
  (void)spec;
  return 0;
}
