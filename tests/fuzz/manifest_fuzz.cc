// libFuzzer target: app.yaml, the manifest's JSON and a catalogue's index
// (which devices fetch over the network), from any bytes. Every
// input must end in a value or an error, never a crash, a leak or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/app/catalog.h"
#include "common/app/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = herd::app::ParseAppYaml(text, "fuzz.yaml");
  auto manifest = herd::app::ParseManifest(text, "fuzz.json");
  if (manifest.ok()) {
    // What parses is canonical: it prints back to the same bytes.
    if (herd::app::CanonicalJson(*manifest) != text) __builtin_trap();
  }
  auto index = herd::app::ParseIndex(text, "index.json");
  if (index.ok()) {
    // What parses prints to text that parses to the same index.
    const std::string again = herd::app::IndexText(*index);
    auto back = herd::app::ParseIndex(again, "index.json");
    if (!back.ok() || herd::app::IndexText(*back) != again) __builtin_trap();
  }
  (void)spec;
  return 0;
}
