// AddHostToInventoryFile: `herd enroll` appends a host without disturbing
// anything else in the file, and never writes a file that would not load.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/file.h"
#include "control/inventory.h"
#include "tests/support/test_support.h"

using herd::StatusCode;
using herd::control::AddHostToInventoryFile;
using herd::control::Host;
using herd::control::LoadInventory;

namespace {

Host NewHost() { return Host{"attic", "127.0.0.1:7500", {{"role", "nas"}, {"zone", "home"}}, ""}; }

}  // namespace

TEST_CASE("a host is appended to hosts:, comments and groups kept", "[unit]") {
  herd::testing::ScopedTempDir dir;
  const std::string path = dir / "inventory.yaml";
  const std::string before =
      "# my fleet\n"
      "hosts:\n"
      "  - name: node01   # the first one\n"
      "    address: 127.0.0.1:7420\n"
      "\n"
      "  # retired: node00\n"
      "groups:\n"
      "  web: [node01]\n";
  herd::testing::WriteFile(path, before);
  REQUIRE(AddHostToInventoryFile(path, NewHost()).ok());
  const std::string after = *herd::ReadFileToString(path);
  CHECK_THAT(after, Catch::StartsWith("# my fleet\nhosts:\n  - name: node01   # the first one\n"));
  CHECK_THAT(after, Catch::Contains("  # retired: node00\n"));
  CHECK_THAT(after, Catch::EndsWith("groups:\n  web: [node01]\n"));
  auto inv = LoadInventory(path);
  REQUIRE(inv.ok());
  REQUIRE(inv->hosts.size() == 2);
  CHECK(inv->hosts[1].name == "attic");
  CHECK(inv->hosts[1].address == "127.0.0.1:7500");
  CHECK(inv->hosts[1].labels.at("role") == "nas");
  CHECK(inv->groups.count("web") == 1);
}

TEST_CASE("a missing inventory is created, folders included", "[unit]") {
  herd::testing::ScopedTempDir dir;
  const std::string path = dir / "a/b/inventory.yaml";
  REQUIRE(AddHostToInventoryFile(path, NewHost()).ok());
  auto inv = LoadInventory(path);
  REQUIRE(inv.ok());
  REQUIRE(inv->hosts.size() == 1);
  CHECK(inv->hosts[0].labels.at("zone") == "home");
}

TEST_CASE("hosts: [] and zero-indented lists are extended", "[unit]") {
  herd::testing::ScopedTempDir dir;
  const std::string path = dir / "inventory.yaml";
  herd::testing::WriteFile(path, "hosts: []\n");
  REQUIRE(AddHostToInventoryFile(path, NewHost()).ok());
  CHECK(LoadInventory(path)->hosts.size() == 1);
  herd::testing::WriteFile(path, "hosts:\n- name: a\n  address: 127.0.0.1:1\n");
  REQUIRE(AddHostToInventoryFile(path, NewHost()).ok());
  auto inv = LoadInventory(path);
  REQUIRE(inv.ok());
  CHECK(inv->hosts.size() == 2);
}

TEST_CASE("a name clash, a broken file or a flow list change nothing", "[unit]") {
  herd::testing::ScopedTempDir dir;
  const std::string path = dir / "inventory.yaml";
  const std::string text = "hosts:\n  - name: attic\n    address: 127.0.0.1:9\n";
  herd::testing::WriteFile(path, text);
  auto clash = AddHostToInventoryFile(path, NewHost());
  CHECK(clash.code() == StatusCode::kAlreadyExists);
  CHECK_THAT(clash.message(), Catch::Contains("already has a host named attic at 127.0.0.1:9"));
  CHECK(*herd::ReadFileToString(path) == text);

  const std::string same = "hosts:\n  - name: attic\n    address: 127.0.0.1:7500\n";
  herd::testing::WriteFile(path, same);
  CHECK(AddHostToInventoryFile(path, NewHost()).code() == StatusCode::kAlreadyExists);
  CHECK(*herd::ReadFileToString(path) == same);

  const std::string broken = "hosts:\n  - name: [\n";
  herd::testing::WriteFile(path, broken);
  auto bad = AddHostToInventoryFile(path, NewHost());
  CHECK_FALSE(bad.ok());
  CHECK_THAT(bad.message(), Catch::Contains(path));
  CHECK(*herd::ReadFileToString(path) == broken);

  const std::string flow = "hosts: [{name: a, address: \"127.0.0.1:1\"}]\n";
  herd::testing::WriteFile(path, flow);
  auto f = AddHostToInventoryFile(path, NewHost());
  CHECK_FALSE(f.ok());
  CHECK_THAT(f.message(), Catch::Contains("add attic by hand"));
  CHECK(*herd::ReadFileToString(path) == flow);
}

TEST_CASE("an inventory that cannot be written is found before enrolling", "[unit]") {
  using herd::control::CheckInventoryWritable;
  herd::testing::ScopedTempDir dir;
  // A folder still to be made, under one that takes files: fine, and no probe left.
  CHECK(CheckInventoryWritable(dir / "new/sub/inventory.yaml").ok());
  CHECK(std::filesystem::is_empty(dir.path()));
  // /proc takes no new files, even from root.
  auto s = CheckInventoryWritable("/proc/herd-inventory.yaml");
  CHECK(s.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(s.message(),
             Catch::StartsWith("cannot write the inventory /proc/herd-inventory.yaml: cannot "
                               "create a file in /proc: "));
  CHECK_THAT(CheckInventoryWritable(dir.path()).message(), Catch::Contains("is a directory"));
  CHECK_THAT(CheckInventoryWritable(dir / "newdir/").message(), Catch::Contains("names a folder"));
  // Replacing it by rename would turn /dev/null into a regular file.
  CHECK_THAT(CheckInventoryWritable("/dev/null").message(),
             Catch::Contains("/dev/null is not a regular file"));
  CHECK_THAT(AddHostToInventoryFile("/dev/null", NewHost()).message(),
             Catch::Contains("/dev/null is not a regular file"));
  struct stat st {};
  REQUIRE(::stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
}
