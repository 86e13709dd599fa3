// App bundles: app.yaml's checks, the canonical manifest, minisign-format
// signatures, and packing then verifying a payload.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/app/bundle.h"
#include "common/app/manifest.h"
#include "common/app/minisign.h"
#include "common/hash.h"
#include "tests/support/app_fixtures.h"
#include "tests/support/test_support.h"

using namespace herd::app;
using herd::testing::CraftBundle;
using herd::testing::Crafted;
using herd::testing::MaliciousPayloads;
using herd::testing::ReadFile;
using herd::testing::ScopedTempDir;
using herd::testing::WriteFile;

namespace {

const char* kAppYaml = R"(name: notes
version: "1.0"
sequence: 10
command: [./notes, --data, /data]
env: {LANG: C}
probes:
  startup: {http: {listen: web, path: /health}}
  liveness: {tcp: {listen: web}}
  timeout: 3s
resources: {memory: 64M, pids: 32}
permissions: {network: none, listen: [web]}
data_format: 2
migrates_from: [1]
)";

std::string Error(const std::string& yaml) {
  auto r = ParseAppYaml(yaml, "app.yaml");
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

}  // namespace

TEST_CASE("app.yaml is read strictly, errors name the line and the field", "[app]") {
  auto a = ParseAppYaml(kAppYaml, "app.yaml");
  REQUIRE(a.ok());
  CHECK(a->name == "notes");
  CHECK(a->sequence == 10);
  CHECK(a->command == std::vector<std::string>{"./notes", "--data", "/data"});
  CHECK(a->probes.startup.type == "http");
  CHECK(a->probes.startup.path == "/health");
  CHECK(a->probes.liveness.type == "tcp");
  CHECK(a->probes.timeout == std::chrono::seconds(3));
  CHECK(a->probes.start_grace == std::chrono::seconds(10));  // the default
  CHECK(a->memory_bytes == 64u << 20);
  CHECK(a->migrates_from == std::vector<uint32_t>{1});

  CHECK_THAT(Error(std::string(kAppYaml) + "colour: blue\n"),
             Catch::Contains("app.yaml:14:1: colour: unknown field"));
  // A complex key (a fuzz finding): refused with its place, never thrown.
  CHECK_THAT(Error("name: x\n? startup: 1\n  liveness: 2\n"),
             Catch::Contains("app.yaml:2:") && Catch::Contains("keys must be plain names"));
  CHECK_THAT(Error("name: x\nversion: \"1\"\nsequence: 1\ncommand: [x]\nprobes:\n  ? [a]\n  : 2\n"),
             Catch::Contains("app.yaml:6:") && Catch::Contains("probes: keys must be plain names"));
  CHECK_THAT(Error("? [a, b]: 1\nname: x\n"), Catch::Contains("keys must be plain names"));
  CHECK_THAT(Error("name: Notes\nversion: 1\nsequence: 1\ncommand: [x]\n"),
             Catch::Contains("app.yaml:1:7: name: may hold only a-z"));
  CHECK_THAT(Error("name: n\nversion: 1\nsequence: -3\ncommand: [x]\n"),
             Catch::Contains("app.yaml:3:11: sequence: has the wrong type"));
  CHECK_THAT(Error("name: n\nversion: 1\nsequence: 1\n"), Catch::Contains("command: is required"));
  CHECK_THAT(Error("name: n\nversion: 1\nsequence: 1\ncommand: [x]\npermissions: {network: all}\n"),
             Catch::Contains("permissions.network: must be one of none, outbound"));
  CHECK_THAT(Error("name: n\nversion: 1\nsequence: 1\ncommand: [x]\nprobes: {startup: {tcp: "
                   "{listen: web}}}\n"),
             Catch::Contains("which permissions.listen does not declare"));
  CHECK_THAT(Error("name: n\nname: m\nversion: 1\nsequence: 1\ncommand: [x]\n"),
             Catch::Contains("duplicate key 'name'"));
  CHECK_THAT(Error(""), Catch::Contains("app.yaml: is empty"));
  // Found by the fuzz target: yaml-cpp's LoadAll never returned on this.
  CHECK_THAT(Error("{\"\":[\"\"],\"\"},"), Catch::Contains("a second YAML document starts here"));
}

TEST_CASE("a manifest whose format is not a string is an error, not an exception", "[app]") {
  for (const char* format : {"1", "null", "[\"herd-app-v1\"]", "{}", "false"}) {
    auto m = ParseManifest(std::string("{\"format\":") + format + "}", "manifest.json");
    REQUIRE_FALSE(m.ok());
    CHECK_THAT(m.status().message(), Catch::Contains("manifest.json"));
  }
}

TEST_CASE("bundle paths must be canonical and relative", "[app]") {
  for (const char* ok : {"notes", "bin/notes", "a/b/c.txt", "..hidden"}) CHECK(IsCanonicalPath(ok));
  for (const char* bad :
       {"", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a/", "a/.", "a\nb"}) {
    CHECK_FALSE(IsCanonicalPath(bad));
  }
}

TEST_CASE("signatures in minisign's format verify, and fail for any change", "[app]") {
  auto k = GenerateKey();
  REQUIRE(k.ok());
  // The base64 line alone is the same key.
  auto line = ParsePublicKey(PublicKeyLine(k->pub), "k.pub");
  REQUIRE(line.ok());
  CHECK(line->id == k->pub.id);
  CHECK(line->key == k->pub.key);
  CHECK(PublicKeyLine(k->pub).find('\n') == std::string::npos);
  auto pub = ParsePublicKey(FormatPublicKey(k->pub), "k.pub");
  REQUIRE(pub.ok());
  auto sec = ParseSecretKey(FormatSecretKey(*k), "k.key");
  REQUIRE(sec.ok());
  auto sig = Sign(*sec, "the manifest", "notes 1.0");
  REQUIRE(sig.ok());
  auto v = Verify(*pub, "the manifest", *sig);
  REQUIRE(v.ok());
  CHECK(v->trusted_comment == "notes 1.0");
  CHECK(Verify(*pub, "the manifest!", *sig).status().code() == herd::StatusCode::kPermissionDenied);
  std::string edited = *sig;
  edited.replace(edited.find("notes 1.0"), 9, "notes 9.9");  // the trusted comment is signed too
  CHECK_FALSE(Verify(*pub, "the manifest", edited).ok());
  auto other = GenerateKey();
  REQUIRE(other.ok());
  CHECK_THAT(Verify(other->pub, "the manifest", *sig).status().message(),
             Catch::Contains("signed by key " + KeyIdHex(k->id)));
  CHECK_FALSE(ParsePublicKey("untrusted comment: x\nnot base64\n", "k.pub").ok());
}

TEST_CASE("a packed bundle reads back and its payload verifies, but not after a byte changes",
          "[app]") {
  ScopedTempDir dir;
  const std::string app = dir / "app";
  std::filesystem::create_directories(app + "/bin");
  WriteFile(app + "/app.yaml", kAppYaml);
  std::string binary(3 << 20, '\0');  // incompressible: several chunks of payload
  uint32_t x = 12345;
  for (char& c : binary) c = static_cast<char>((x = x * 1103515245u + 12345u) >> 24);
  WriteFile(app + "/bin/notes", binary);
  ::chmod((app + "/bin/notes").c_str(), 0755);
  WriteFile(app + "/README", "notes\n");
  const std::string bundle = dir / "notes.herd";
  auto m = Pack(app, bundle);
  REQUIRE(m.ok());
  CHECK(m->files.size() == 3);
  REQUIRE(m->files[2].path == "bin/notes");  // sorted: README, app.yaml, bin/notes
  CHECK(m->files[2].mode == 0755);
  CHECK(m->files[0].mode == 0644);
  auto head = ReadHead(bundle);
  REQUIRE(head.ok());
  CHECK(head->manifest_text == CanonicalJson(*m));
  CHECK(head->signatures.empty());
  size_t bytes = 0;
  CHECK(
      VerifyPayload(bundle, head->manifest, {}, [&](const FileEntry&, std::string_view data, bool) {
        bytes += data.size();
        return herd::Status::Ok();
      }).ok());
  CHECK(bytes == (3u << 20) + 6 + std::string(kAppYaml).size());
  // Limits hold.
  PayloadLimits small;
  small.max_bytes = 1 << 20;
  CHECK_THAT(VerifyPayload(bundle, head->manifest, small).message(),
             Catch::Contains("expands beyond"));
  // One byte of the payload changed: found.
  std::string raw = ReadFile(bundle);
  raw[raw.size() - 2048] ^= 0x01;
  WriteFile(bundle, raw);
  CHECK_FALSE(VerifyPayload(bundle, head->manifest).ok());
  // A symbolic link is never packed.
  std::filesystem::create_symlink("/etc/passwd", app + "/link");
  CHECK_THAT(Pack(app, dir / "again.herd").status().message(),
             Catch::Contains("only regular files and folders"));
}

TEST_CASE("a payload that differs from its signed manifest is refused, entry by entry", "[app]") {
  ScopedTempDir dir;
  const Crafted ok{"ok.txt", AE_IFREG, 0644, "hello", ""};
  const auto corpus = MaliciousPayloads();
  int i = 0;
  for (const auto& [entries, why] : corpus) {
    const std::string path = dir / ("case" + std::to_string(i++) + ".herd");
    const Manifest m = CraftBundle(path, entries);
    size_t written = 0;
    const auto s = VerifyPayload(path, m, {}, [&](const FileEntry&, std::string_view d, bool) {
      written += d.size();
      return herd::Status::Ok();
    });
    INFO("case " << i - 1 << ": " << s.message());
    CHECK_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains(why));
  }
  // The well-formed one passes; too many entries do not.
  const Manifest m = CraftBundle(dir / "good.herd", {ok});
  CHECK(VerifyPayload(dir / "good.herd", m).ok());
  PayloadLimits one;
  one.max_entries = 0;
  CHECK_THAT(VerifyPayload(dir / "good.herd", m, one).message(),
             Catch::Contains("more than 0 entries"));
}
