// AppStore with real bundles, real keys and real folders: trust, the
// owner's policy, sequences, pruning, malicious payloads, leftovers.
#include "agent/apps/app_store.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/app/bundle.h"
#include "common/hash.h"
#include "tests/support/app_fixtures.h"
#include "tests/support/test_support.h"

using namespace herd;
using namespace herd::testing;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  ScopedTempDir dir;
  app::SecretKey key = *app::GenerateKey();
  agent::AppsSettings settings;
  std::unique_ptr<agent::AppStore> store;

  Fixture() {
    settings.publishers = {key.pub};
    store = std::make_unique<agent::AppStore>(settings, dir / "apps");
    REQUIRE(store->Open().ok());
  }

  // `bundle` signed by `by` (none: unsigned).
  static void Sign(const std::string& bundle, const app::SecretKey* by) {
    if (!by) return;
    auto head = app::ReadHead(bundle);
    REQUIRE(head.ok());
    auto sig = app::Sign(*by, head->manifest_text, "test");
    REQUIRE(sig.ok());
    REQUIRE(app::WriteSignatures(bundle, {*sig}).ok());
  }

  // A packed bundle of app `name` at `sequence`, signed by `by`.
  std::string Bundle(const std::string& name, uint64_t sequence, const std::string& extra = "",
                     const app::SecretKey* by = nullptr, const std::string& content = "run") {
    const std::string src = dir / (name + "-src-" + std::to_string(sequence) + content);
    fs::create_directories(src + "/bin");
    WriteFile(src + "/app.yaml", "name: " + name + "\nversion: \"1." + std::to_string(sequence) +
                                     "\"\nsequence: " + std::to_string(sequence) +
                                     "\ncommand: [bin/run]\n" + extra);
    WriteFile(src + "/bin/run", "#!/bin/sh\necho " + content + "\n");
    ::chmod((src + "/bin/run").c_str(), 0755);
    const std::string out = src + ".herd";
    REQUIRE(app::Pack(src, out).ok());
    Sign(out, by ? by : &key);
    return out;
  }

  // Stores `bundle` as an upload would, and installs it.
  Result<agent::InstalledVersionInfo> Install(const std::string& bundle, bool downgrade = false) {
    const std::string sha = Sha256Hex(ReadFile(bundle));
    fs::copy_file(bundle, store->BundlePath(sha), fs::copy_options::overwrite_existing);
    return store->Install(sha, downgrade);
  }

  // The bundles kept, and any temporary left in the app folders.
  size_t Bundles() const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir / "apps/bundles")) n += e.is_regular_file();
    return n;
  }
  bool Leftovers() const {
    for (const auto& e : fs::recursive_directory_iterator(dir / "apps")) {
      if (e.path().filename().string()[0] == '.') return true;
    }
    return false;
  }
};

}  // namespace

TEST_CASE("a trusted bundle installs into a version folder once, and the newest three are kept",
          "[agent][apps]") {
  Fixture f;
  auto v = f.Install(f.Bundle("notes", 1));
  REQUIRE(v.ok());
  CHECK(v->name == "notes");
  CHECK(v->sequence == 1);
  CHECK_FALSE(v->already_installed);
  CHECK(v->signers == std::vector<std::string>{app::KeyIdHex(f.key.id)});
  const std::string run = f.dir / "apps/notes/1/files/bin/run";
  CHECK(ReadFile(run) == "#!/bin/sh\necho run\n");
  struct stat st {};
  REQUIRE(::stat(run.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  CHECK(fs::exists(f.dir / "apps/notes/1/manifest.json"));

  auto again = f.Install(f.Bundle("notes", 1));
  REQUIRE(again.ok());
  CHECK(again->already_installed);

  for (uint64_t seq : {2, 3, 4}) REQUIRE(f.Install(f.Bundle("notes", seq)).ok());
  std::vector<uint64_t> kept;
  for (const auto& x : f.store->List()) kept.push_back(x.sequence);
  CHECK(kept == std::vector<uint64_t>{4, 3, 2});
  CHECK_FALSE(fs::exists(f.dir / "apps/notes/1"));
  CHECK(f.Bundles() == 3);  // the bundle of sequence 1 went with it
  CHECK_FALSE(f.Leftovers());
}

TEST_CASE("untrusted, unsigned, downgraded, re-sequenced and over-policy bundles are refused",
          "[agent][apps]") {
  Fixture f;
  REQUIRE(f.Install(f.Bundle("notes", 5)).ok());
  auto stranger = *app::GenerateKey();
  const auto refused = [&](const std::string& bundle, StatusCode code, const std::string& why,
                           bool downgrade = false) {
    auto r = f.Install(bundle, downgrade);
    INFO(r.status().message());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    CHECK_THAT(r.status().message(), Catch::Contains(why));
    CHECK(f.Bundles() == 1);  // only the installed version's
    CHECK_FALSE(f.Leftovers());
  };
  // Unsigned: Pack's output as it is.
  {
    const std::string src = f.dir / "unsigned";
    fs::create_directories(src);
    WriteFile(src + "/app.yaml", "name: notes\nversion: x\nsequence: 6\ncommand: [x]\n");
    REQUIRE(app::Pack(src, src + ".herd").ok());
    refused(src + ".herd", StatusCode::kPermissionDenied, "not signed");
  }
  refused(f.Bundle("notes", 6, "", &stranger), StatusCode::kPermissionDenied,
          "signed only by keys this device does not trust: " + app::KeyIdHex(stranger.id));
  // A trusted key's signature over other bytes.
  {
    const std::string bundle = f.Bundle("notes", 6);
    const std::string other = f.Bundle("notes", 7);
    auto head = app::ReadHead(other);
    REQUIRE(head.ok());
    REQUIRE(app::WriteSignatures(bundle, head->signatures).ok());
    refused(bundle, StatusCode::kPermissionDenied, "bad signature by trusted key");
  }
  refused(f.Bundle("notes", 4), StatusCode::kFailedPrecondition,
          "is older than the installed 1.5 (sequence 5)");
  refused(f.Bundle("notes", 5, "", nullptr, "rebuilt"), StatusCode::kAlreadyExists,
          "sequence 5 is installed from another bundle");
  refused(f.Bundle("notes", 6, "permissions: {network: outbound}\n"), StatusCode::kPermissionDenied,
          "apps.allow_outbound");
  refused(f.Bundle("notes", 6, "resources: {memory: 1G}\n"), StatusCode::kPermissionDenied,
          "apps.max_memory");
  refused(f.Bundle("notes", 6, "resources: {pids: 4096}\n"), StatusCode::kPermissionDenied,
          "apps.max_pids");
  // The owner may grant more; a rollback may go lower when asked to.
  f.settings.allow_outbound = true;
  CHECK(f.Install(f.Bundle("notes", 6, "permissions: {network: outbound}\n")).ok());
  CHECK(f.Install(f.Bundle("notes", 4), true).ok());
}

TEST_CASE("every malicious payload is refused on the device and leaves nothing behind",
          "[agent][apps]") {
  Fixture f;
  int i = 0;
  for (const auto& [entries, why] : MaliciousPayloads()) {
    const std::string bundle = f.dir / ("case" + std::to_string(i++) + ".herd");
    CraftBundle(bundle, entries);
    Fixture::Sign(bundle, &f.key);
    auto r = f.Install(bundle);
    INFO("case " << i - 1 << ": " << r.status().message());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains(why));
    CHECK(f.store->List().empty());
    CHECK(f.Bundles() == 0);
    CHECK_FALSE(f.Leftovers());
  }
  // Nothing was written outside the store either.
  CHECK_FALSE(fs::exists(f.dir / "up"));
  CHECK_FALSE(fs::exists(f.dir / "apps/up"));
  CHECK_FALSE(fs::exists(f.dir / "b"));
  // The well-formed one installs.
  CraftBundle(f.dir / "good.herd", {{"ok.txt", AE_IFREG, 0644, "hello", ""}});
  Fixture::Sign(f.dir / "good.herd", &f.key);
  CHECK(f.Install(f.dir / "good.herd").ok());
}

TEST_CASE("what an interrupted install or prune left is cleared when the store opens",
          "[agent][apps]") {
  Fixture f;
  REQUIRE(f.Install(f.Bundle("notes", 1)).ok());
  fs::create_directories(f.dir / "apps/notes/.tmp-2/files");
  fs::create_directories(f.dir / "apps/notes/.trash-0/files");
  WriteFile(f.dir / "apps/bundles/0000.herd", "orphan");
  agent::AppStore again(f.settings, f.dir / "apps");
  REQUIRE(again.Open().ok());
  CHECK_FALSE(f.Leftovers());
  CHECK(f.Bundles() == 1);
  REQUIRE(again.List().size() == 1);
  CHECK(again.List()[0].sequence == 1);
}

TEST_CASE("each app gets a uid of its own that never changes, and a data folder it owns",
          "[agent][apps]") {
  Fixture f;
  f.settings.uid_base = 61'000;
  auto a = f.store->AppUid("notes"), b = f.store->AppUid("wiki");
  REQUIRE((a.ok() && b.ok()));
  CHECK(*a != *b);
  agent::AppStore again(f.settings, f.dir / "apps");
  CHECK(*again.AppUid("notes") == *a);
  CHECK(*again.AppUid("wiki") == *b);
  // Ids this machine's accounts use are skipped: 0-2 (root, daemon, bin)
  // are all taken.
  agent::AppsSettings taken = f.settings;
  taken.uid_base = 0;
  taken.uid_count = 3;
  agent::AppStore none(taken, f.dir / "other");
  REQUIRE(none.Open().ok());
  CHECK(none.AppUid("x").status().code() == StatusCode::kResourceExhausted);
  if (::geteuid() == 0) {
    auto data = f.store->DataDir("notes");
    REQUIRE(data.ok());
    struct stat st {};
    REQUIRE(::stat(data->c_str(), &st) == 0);
    CHECK(st.st_uid == *a);
    CHECK((st.st_mode & 0777) == 0700);
    // Data stays when versions come and go.
    REQUIRE(f.Install(f.Bundle("notes", 1)).ok());
    CHECK(fs::exists(*data));
  }
}
