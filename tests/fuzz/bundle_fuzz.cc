// libFuzzer target: a bundle from any bytes, read as a device would (head,
// then payload against the manifest, with small limits). Must end in a value
// or an error, never a crash, a leak or a hang.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "common/app/bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    char tmpl[] = "/tmp/herd-bundle-fuzz-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd >= 0) ::close(fd);
    return std::string(tmpl);
  }();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  auto head = herd::app::ReadHead(path);
  if (head.ok()) {
    herd::app::PayloadLimits limits;
    limits.max_entries = 64;
    limits.max_bytes = 1 << 20;
    (void)herd::app::VerifyPayload(
        path, head->manifest, limits,
        [](const herd::app::FileEntry&, std::string_view, bool) { return herd::Status::Ok(); });
  }
  return 0;
}
