#include "agent/startup_pages.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace herd::agent {
namespace {

struct Mapping {
  uintptr_t start = 0, end = 0;
  bool candidate = false;  // r?-p (read-only, private) with an inode
  uint64_t rss_kb = 0, anonymous_kb = 0;
};

// "Rss:   1234 kB" -> 1234 when `line` starts with `key`.
bool Field(const std::string& line, const char* key, uint64_t* kb) {
  const size_t n = std::strlen(key);
  if (line.compare(0, n, key) != 0) return false;
  *kb = std::strtoull(line.c_str() + n, nullptr, 10);
  return true;
}

}  // namespace

Result<uint64_t> ReleaseStartupPages() {
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return Status::Internal("cannot read /proc/self/smaps");
  std::vector<Mapping> maps;
  std::string line;
  while (std::getline(smaps, line)) {
    unsigned long start = 0, end = 0, inode = 0;
    char perms[8] = {};
    unsigned long long offset = 0;
    char dev[16] = {};
    // "55d1679-55d1697 r-xp 00019000 fe:00 5308603   /path"
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %llx %15s %lu", &start, &end, perms, &offset, dev,
                    &inode) == 6) {
      Mapping m;
      m.start = start;
      m.end = end;
      m.candidate = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && inode != 0;
      maps.push_back(m);
      continue;
    }
    if (maps.empty()) continue;
    uint64_t kb = 0;
    if (Field(line, "Rss:", &kb)) {
      maps.back().rss_kb = kb;
    } else if (Field(line, "Anonymous:", &kb)) {
      maps.back().anonymous_kb = kb;
    }
  }
  uint64_t released = 0;
  for (const Mapping& m : maps) {
    if (!m.candidate || m.anonymous_kb != 0 || m.rss_kb == 0) continue;
    if (::madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) != 0) {
      return Status::Internal(std::string("madvise: ") + std::strerror(errno));
    }
    released += m.rss_kb * 1024;
  }
  return released;
}

}  // namespace herd::agent
