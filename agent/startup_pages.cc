#include "agent/startup_pages.h"

#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace herd::agent {
namespace {

struct Walk {
  uintptr_t page = 4096;
  uintptr_t vdso = 0;
  uint64_t released = 0;
  int failures = 0;
  int last_errno = 0;
};

// True if the object's dynamic section asks for text relocations.
bool HasTextRelocations(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_DYNAMIC) continue;
    const auto* dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + ph.p_vaddr);
    for (; dyn->d_tag != DT_NULL; ++dyn) {
      if (dyn->d_tag == DT_TEXTREL) return true;
      if (dyn->d_tag == DT_FLAGS && (dyn->d_un.d_val & DF_TEXTREL)) return true;
    }
  }
  return false;
}

int ReleaseObject(dl_phdr_info* info, size_t, void* data) {
  auto* w = static_cast<Walk*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {  // the vDSO is the kernel's, not a file
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && w->vdso >= start && w->vdso < start + ph.p_memsz) return 0;
  }
  if (HasTextRelocations(info)) return 0;
  const auto down = [&](uintptr_t a) { return a & ~(w->page - 1); };
  const auto up = [&](uintptr_t a) { return down(a + w->page - 1); };
  // Ranges never to touch, rounded out to whole pages: writable segments
  // and RELRO.
  std::vector<std::pair<uintptr_t, uintptr_t>> keep;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if ((ph.p_type == PT_LOAD && (ph.p_flags & PF_W)) || ph.p_type == PT_GNU_RELRO) {
      keep.emplace_back(down(start), up(start + ph.p_memsz));
    }
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W)) continue;
    // Whole pages inside the segment's file-backed part only.
    const uintptr_t seg = info->dlpi_addr + ph.p_vaddr;
    const uintptr_t start = up(seg);
    uintptr_t end = down(seg + std::min(ph.p_filesz, ph.p_memsz));
    for (const auto& [ks, ke] : keep) {
      if (ks < end && ke > start) {  // overlap: keep the part before it
        end = std::max(start, ks);
      }
    }
    if (end <= start) continue;
    if (::madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTNEED) != 0) {
      ++w->failures;
      w->last_errno = errno;
      continue;
    }
    w->released += end - start;
  }
  return 0;
}

}  // namespace

Result<uint64_t> ReleaseStartupPages() {
  Walk w;
  const long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) w.page = static_cast<uintptr_t>(page);
  w.vdso = static_cast<uintptr_t>(::getauxval(AT_SYSINFO_EHDR));
  ::dl_iterate_phdr(ReleaseObject, &w);
  if (w.failures > 0 && w.released == 0) {
    return Status::Internal(std::string("madvise: ") + std::strerror(w.last_errno));
  }
  return w.released;
}

void ReleaseAfterWork(const char* what) {
  auto released = ReleaseStartupPages();
  const int trimmed = ::malloc_trim(0);
  spdlog::debug("after {}: released {} KB of code pages{}", what,
                released.ok() ? *released / 1024 : 0, trimmed ? ", heap trimmed" : "");
}

}  // namespace herd::agent
