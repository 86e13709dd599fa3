#include "agent/files/file_writer.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/hash.h"
#include "tests/support/test_support.h"

using herd::agent::AtomicFileWriter;
using herd::testing::ReadFile;
using herd::testing::ScopedTempDir;
using herd::testing::WriteFile;

namespace {
size_t Entries(const std::string& dir) {
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}
}  // namespace

TEST_CASE("a verified upload replaces the file atomically with its mode", "[agent][files]") {
  ScopedTempDir dir;
  const std::string path = dir / "f.txt", data = "new content";
  WriteFile(path, "old");
  auto w = AtomicFileWriter::Open(path, 0640, data.size(), herd::Sha256Hex(data));
  REQUIRE(w.ok());
  REQUIRE((*w)->Write("new ").ok());
  CHECK(ReadFile(path) == "old");  // nothing visible before commit
  REQUIRE((*w)->Write("content").ok());
  REQUIRE((*w)->Commit().ok());
  CHECK(ReadFile(path) == data);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(Entries(dir.path()) == 1);
}

TEST_CASE("a bad checksum, short or long upload leaves the old file alone", "[agent][files]") {
  ScopedTempDir dir;
  const std::string path = dir / "f.txt";
  WriteFile(path, "precious");
  {
    auto w = AtomicFileWriter::Open(path, 0644, 3, std::string(64, '0'));
    REQUIRE(w.ok());
    REQUIRE((*w)->Write("abc").ok());
    auto s = (*w)->Commit();
    CHECK_THAT(s.message(), Catch::Contains("checksum mismatch"));
  }
  {
    auto w = AtomicFileWriter::Open(path, 0644, 10, herd::Sha256Hex("0123456789"));
    REQUIRE(w.ok());
    REQUIRE((*w)->Write("01234").ok());
    CHECK_THAT((*w)->Commit().message(), Catch::Contains("received 5 of 10 bytes"));
    CHECK_FALSE((*w)->Write("0123456789").ok());
  }
  {
    auto w = AtomicFileWriter::Open(path, 0644, 10, herd::Sha256Hex("0123456789"));
    REQUIRE(w.ok());
    (void)(*w)->Write("0123");  // abandoned mid-way (connection lost)
  }
  CHECK(ReadFile(path) == "precious");
  CHECK(Entries(dir.path()) == 1);  // no temporaries left behind
}

TEST_CASE("uploads onto a directory or into a missing one are refused", "[agent][files]") {
  ScopedTempDir dir;
  auto sha = herd::Sha256Hex("");
  CHECK_THAT(AtomicFileWriter::Open(dir.path(), 0644, 0, sha).status().message(),
             Catch::Contains("is a directory"));
  CHECK_THAT(AtomicFileWriter::Open(dir / "missing/f", 0644, 0, sha).status().message(),
             Catch::Contains("does not exist"));
  CHECK_THAT(AtomicFileWriter::Open("relative/f", 0644, 0, sha).status().message(),
             Catch::Contains("absolute"));
}

TEST_CASE("uploads onto a device, FIFO or symlink are refused and leave it alone",
          "[agent][files]") {
  ScopedTempDir dir;
  auto sha = herd::Sha256Hex("");
  CHECK_THAT(AtomicFileWriter::Open("/dev/null", 0644, 0, sha).status().message(),
             Catch::Contains("/dev/null is a character device"));
  const std::string fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THAT(AtomicFileWriter::Open(fifo, 0644, 0, sha).status().message(),
             Catch::Contains("is a FIFO"));
  const std::string link = dir / "link";
  REQUIRE(::symlink("/etc/hostname", link.c_str()) == 0);
  CHECK_THAT(AtomicFileWriter::Open(link, 0644, 0, sha).status().message(),
             Catch::Contains("is a symbolic link"));
  struct stat st {};
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  REQUIRE(::lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
}

TEST_CASE("temporaries of an agent killed mid-upload are removed at the next start",
          "[agent][files]") {
  ScopedTempDir dir;
  const std::string notes = dir / "notes", dest = dir / "dest", data = "0123456789";
  std::filesystem::create_directory(notes);
  WriteFile(dest, "old");
  // The crash, injected after each step of an upload: in a child that dies
  // without running a destructor.
  for (int step = 0; step < 2; ++step) {
    const pid_t child = ::fork();
    if (child == 0) {
      auto w = AtomicFileWriter::Open(dest, 0644, data.size(), herd::Sha256Hex(data), notes);
      if (!w.ok()) ::_exit(1);
      if (step == 1 && !(*w)->Write("01234").ok()) ::_exit(1);
      ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  CHECK(Entries(dir.path()) == 4);  // notes/, dest, two temporaries
  CHECK(Entries(notes) == 2);
  // A note that names something else than a temporary removes nothing.
  WriteFile(notes + "/forged", dest);
  CHECK(herd::agent::RemoveLeftTemporaries(notes) == 2);
  CHECK(Entries(notes) == 0);
  CHECK(Entries(dir.path()) == 2);
  CHECK(ReadFile(dest) == "old");
  CHECK(herd::agent::RemoveLeftTemporaries(dir / "missing") == 0);
}

TEST_CASE("a finished or abandoned upload leaves no note behind", "[agent][files]") {
  ScopedTempDir dir;
  const std::string notes = dir / "notes", data = "abc";
  std::filesystem::create_directory(notes);
  {
    auto w = AtomicFileWriter::Open(dir / "a", 0644, data.size(), herd::Sha256Hex(data), notes);
    REQUIRE(w.ok());
    CHECK(Entries(notes) == 1);
    REQUIRE((*w)->Write(data).ok());
    REQUIRE((*w)->Commit().ok());
  }
  {
    auto w = AtomicFileWriter::Open(dir / "b", 0644, data.size(), herd::Sha256Hex(data), notes);
    REQUIRE(w.ok());
  }
  CHECK(Entries(notes) == 0);
  CHECK(ReadFile(dir / "a") == data);
  CHECK_FALSE(std::filesystem::exists(dir / "b"));
}

namespace {

struct stat StatOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st;
}

herd::Status Upload(const std::string& path, const herd::agent::FileOptions& o,
                    const std::string& data) {
  auto w = AtomicFileWriter::Open(path, o, data.size(), herd::Sha256Hex(data));
  if (!w.ok()) return w.status();
  if (auto s = (*w)->Write(data); !s.ok()) return s;
  return (*w)->Commit();
}

}  // namespace

TEST_CASE("a replaced file keeps its mode, owner and group unless told otherwise",
          "[agent][files]") {
  ScopedTempDir dir;
  const std::string path = dir / "f";
  WriteFile(path, "old");
  REQUIRE(::chmod(path.c_str(), 0640) == 0);
  if (::geteuid() == 0) REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
  const auto before = StatOf(path);
  herd::agent::FileOptions o;
  o.mode = 0755;  // a new file's
  REQUIRE(Upload(path, o, "new").ok());
  auto st = StatOf(path);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_uid == before.st_uid);
  CHECK(st.st_gid == before.st_gid);
  o.set_mode = true;
  REQUIRE(Upload(path, o, "newer").ok());
  CHECK((StatOf(path).st_mode & 07777) == 0755);
  // A new file gets the given mode.
  REQUIRE(Upload(dir / "g", o, "x").ok());
  CHECK((StatOf(dir / "g").st_mode & 07777) == 0755);
}

TEST_CASE("setuid, setgid and sticky bits need an explicit allowance, kept or given",
          "[agent][files]") {
  ScopedTempDir dir;
  const std::string path = dir / "tool";
  WriteFile(path, "old");
  REQUIRE(::chmod(path.c_str(), 04755) == 0);
  herd::agent::FileOptions keep;
  auto refused = Upload(path, keep, "new");
  CHECK(refused.code() == herd::StatusCode::kFailedPrecondition);
  CHECK_THAT(refused.message(), Catch::Contains("mode 4755 (setuid, setgid or sticky)"));
  CHECK(ReadFile(path) == "old");
  herd::agent::FileOptions given;
  given.mode = 02755;
  given.set_mode = true;
  CHECK_FALSE(Upload(dir / "new", given, "x").ok());
  CHECK_FALSE(std::filesystem::exists(dir / "new"));
  keep.allow_setid = true;
  REQUIRE(Upload(path, keep, "new").ok());
  CHECK((StatOf(path).st_mode & 07777) == 04755);
  CHECK(Entries(dir.path()) == 1);
}

TEST_CASE("an upload as an account is checked as that account would be", "[agent][files]") {
  if (::geteuid() != 0) return;  // only root can switch (the CI runs as root)
  auto nobody = herd::agent::LookupAccount("nobody");
  REQUIRE(nobody.ok());
  ScopedTempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  const std::string theirs = dir / "theirs";
  std::filesystem::create_directory(theirs);
  REQUIRE(::chown(theirs.c_str(), nobody->uid, nobody->gid) == 0);
  herd::agent::FileOptions o;
  o.account = &*nobody;
  // Root's folder: not writable for the account.
  auto denied = Upload(dir / "f", o, "x");
  CHECK_FALSE(denied.ok());
  CHECK_THAT(denied.message(), Catch::Contains("Permission denied"));
  CHECK_FALSE(std::filesystem::exists(dir / "f"));
  // Its own folder: the new file is its own.
  REQUIRE(Upload(theirs + "/f", o, "x").ok());
  CHECK(StatOf(theirs + "/f").st_uid == nobody->uid);
  // A root-owned file in its folder: it cannot keep root as the owner.
  WriteFile(theirs + "/rootfile", "old");
  auto kept = Upload(theirs + "/rootfile", o, "new");
  CHECK_THAT(kept.message(), Catch::Contains("cannot give") && Catch::Contains("as nobody"));
  CHECK(ReadFile(theirs + "/rootfile") == "old");
  // The agent's thread is root again afterwards.
  WriteFile(dir / "mine", "ok");
  CHECK(StatOf(dir / "mine").st_uid == 0);
}
