#include "tests/support/app_fixtures.h"

#include <archive.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "common/hash.h"
#include "tests/support/test_support.h"

namespace herd::testing {

using herd::app::CanonicalJson;

static void Add(archive* w, const std::string& name, unsigned type, unsigned mode,
                const std::string& data, const std::string& link = "", bool hardlink = false) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, mode);
  archive_entry_set_size(e,
                         type == AE_IFREG && !hardlink ? static_cast<la_int64_t>(data.size()) : 0);
  if (!link.empty() && hardlink) archive_entry_set_hardlink(e, link.c_str());
  if (!link.empty() && !hardlink) archive_entry_set_symlink(e, link.c_str());
  REQUIRE(archive_write_header(w, e) == ARCHIVE_OK);
  if (type == AE_IFREG && !hardlink && !data.empty()) {
    REQUIRE(archive_write_data(w, data.data(), data.size()) ==
            static_cast<la_ssize_t>(data.size()));
  }
  archive_entry_free(e);
}

// A bundle whose manifest names one file, ok.txt ("hello"), and whose
// payload holds `entries` instead: what an attacker who controls the
// payload (but not the signed manifest) could send.
herd::app::Manifest CraftBundle(const std::string& path, const std::vector<Crafted>& entries) {
  const std::string payload = path + ".payload";
  archive* w = archive_write_new();
  archive_write_set_format_pax_restricted(w);
  archive_write_add_filter_zstd(w);
  REQUIRE(archive_write_open_filename(w, payload.c_str()) == ARCHIVE_OK);
  for (const auto& c : entries) {
    Add(w, c.name, c.type, c.mode, c.data, c.link, c.type == AE_IFREG && !c.link.empty());
  }
  archive_write_close(w);
  archive_write_free(w);
  const std::string bytes = ReadFile(payload);
  herd::app::Manifest m;
  m.app.name = "crafted";
  m.app.version = "1";
  m.app.sequence = 1;
  m.app.command = {"x"};
  m.files = {{"ok.txt", 0644, 5, herd::Sha256Hex("hello")}};
  m.payload_size = bytes.size();
  m.payload_sha256 = herd::Sha256Hex(bytes);
  for (size_t at = 0; at < bytes.size(); at += m.chunk_size) {
    m.chunks.push_back(herd::Sha256Hex(std::string_view(bytes).substr(at, m.chunk_size)));
  }
  archive* o = archive_write_new();
  archive_write_set_format_pax_restricted(o);
  REQUIRE(archive_write_open_filename(o, path.c_str()) == ARCHIVE_OK);
  Add(o, "herd-bundle", AE_IFREG, 0644, "herd-app-bundle v1\n");
  Add(o, "manifest.json", AE_IFREG, 0644, CanonicalJson(m));
  Add(o, "signatures", AE_IFREG, 0644, "");
  Add(o, "payload.tar.zst", AE_IFREG, 0644, bytes);
  archive_write_close(o);
  archive_write_free(o);
  std::remove(payload.c_str());
  return m;
}

std::vector<std::pair<std::vector<Crafted>, std::string>> MaliciousPayloads() {
  const Crafted ok{"ok.txt", AE_IFREG, 0644, "hello", ""};
  return {
      {{ok, {"/etc/cron.d/evil", AE_IFREG, 0644, "x", ""}}, "not a canonical relative path"},
      {{ok, {"../up", AE_IFREG, 0644, "x", ""}}, "not a canonical relative path"},
      {{ok, {"a/../../b", AE_IFREG, 0644, "x", ""}}, "not a canonical relative path"},
      {{ok, {"link", AE_IFLNK, 0777, "", "/etc/passwd"}}, "not a regular file"},
      {{ok, {"hard", AE_IFREG, 0644, "", "ok.txt"}}, "hard link"},
      {{ok, {"dev", AE_IFCHR, 0644, "", ""}}, "not a regular file"},
      {{ok, {"fifo", AE_IFIFO, 0644, "", ""}}, "not a regular file"},
      {{{"ok.txt", AE_IFREG, 04755, "hello", ""}}, "setuid"},
      {{ok, {"extra", AE_IFREG, 0644, "x", ""}}, "not in the manifest"},
      {{ok, ok}, "not in the manifest, or repeats"},
      {{{"ok.txt", AE_IFREG, 0644, "hello!", ""}}, "differs from the manifest"},
      {{{"ok.txt", AE_IFREG, 0644, "HELLO", ""}}, "does not match its SHA-256"},
      {{}, "lacks ok.txt"},
  };
}

}  // namespace herd::testing
