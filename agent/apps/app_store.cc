#include "agent/apps/app_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/apps/snapshot.h"
#include "common/app/bundle.h"
#include "common/file.h"
#include "common/unique_fd.h"

namespace herd::agent {
namespace fs = std::filesystem;
namespace {

Status Errno(const std::string& what) {
  return Status::Internal(what + ": " + std::strerror(errno));
}

Status SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) return Errno("cannot sync " + dir);
  return Status::Ok();
}

Status MakeDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("cannot create " + dir);
  return Status::Ok();
}

bool IsSequence(const std::string& s) {
  return !s.empty() && s.size() <= 20 && s.find_first_not_of("0123456789") == std::string::npos;
}

// Writes the payload's files below `root` as VerifyPayload hands them over.
// Paths are canonical and relative, and nothing below `root` is a link (the
// folder is new and the payload holds none), so plain paths are safe.
class Extractor {
 public:
  explicit Extractor(std::string root) : root_(std::move(root)) {}

  Status Take(const app::FileEntry& f, std::string_view data, bool last) {
    if (!fd_.valid()) {
      if (Status s = Parents(f.path); !s.ok()) return s;
      const std::string path = root_ + "/" + f.path;
      fd_ = UniqueFd(
          ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!fd_.valid()) return Errno("cannot create " + path);
    }
    while (!data.empty()) {
      const ssize_t n = ::write(fd_.get(), data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Errno("cannot write " + f.path);
      data.remove_prefix(static_cast<size_t>(n));
    }
    if (last) {
      // The manifest's permission bits only: never setuid, setgid or sticky.
      if (::fchmod(fd_.get(), f.mode & 0777) != 0 || ::fsync(fd_.get()) != 0) {
        return Errno("cannot finish " + f.path);
      }
      fd_.Close();
      ++files_;
      CrashPoint("install:extracting");
    }
    return Status::Ok();
  }
  uint64_t files() const { return files_; }

 private:
  Status Parents(const std::string& rel) {
    for (size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1)) {
      if (Status s = MakeDir(root_ + "/" + rel.substr(0, slash)); !s.ok()) return s;
    }
    return Status::Ok();
  }
  std::string root_;
  UniqueFd fd_;
  uint64_t files_ = 0;
};

nlohmann::json ToJson(const InstalledVersionInfo& v) {
  return {{"name", v.name},
          {"version", v.version},
          {"sequence", v.sequence},
          {"bundle_sha256", v.bundle_sha256},
          {"files", v.files},
          {"bytes", v.bytes},
          {"installed_unix", v.installed_unix},
          {"signers", v.signers}};
}

Result<InstalledVersionInfo> FromJson(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    InstalledVersionInfo v;
    v.name = j.at("name").get<std::string>();
    v.version = j.at("version").get<std::string>();
    v.sequence = j.at("sequence").get<uint64_t>();
    v.bundle_sha256 = j.at("bundle_sha256").get<std::string>();
    v.files = j.at("files").get<uint64_t>();
    v.bytes = j.at("bytes").get<uint64_t>();
    v.installed_unix = j.at("installed_unix").get<int64_t>();
    v.signers = j.at("signers").get<std::vector<std::string>>();
    return v;
  } catch (const std::exception& e) {
    return Status::Invalid(e.what());
  }
}

}  // namespace

void CrashPoint(const char* step) {
  static const char* const at = std::getenv("HERD_TEST_CRASH_AT");
  if (at && std::strcmp(at, step) == 0) {
    spdlog::default_logger()->flush();
    ::raise(SIGKILL);
  }
}

AppStore::AppStore(const AppsSettings& settings, std::string dir)
    : settings_(settings), dir_(std::move(dir)) {}

std::string AppStore::BundlePath(const std::string& sha256) const {
  return dir_ + "/bundles/" + sha256 + ".herd";
}

Status AppStore::Open() {
  // Apps' uids traverse it to their files (bwrap binds them by path) but
  // may not list it; bundles are herd's alone.
  if (Status s = MakeDirs(dir_, 0711); !s.ok()) return s;
  if (::chmod(dir_.c_str(), 0711) != 0) return Errno("cannot chmod " + dir_);
  if (::mkdir((dir_ + "/bundles").c_str(), 0700) != 0 && errno != EEXIST) {
    return Errno("cannot create " + dir_ + "/bundles");
  }
  std::error_code ec;
  int removed = 0;
  for (const auto& app : fs::directory_iterator(dir_, ec)) {
    if (!app.is_directory() || app.path().filename() == "bundles") continue;
    for (const auto& e : fs::directory_iterator(app.path(), ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(".tmp-", 0) == 0 || n.rfind(".trash-", 0) == 0) {
        RemoveTree(e.path().string());
        ++removed;
      }
    }
  }
  // keep_versions holds also for an install cut short after its rename.
  for (const auto& app : fs::directory_iterator(dir_, ec)) {
    const std::string n = app.path().filename().string();
    if (app.is_directory() && n != "bundles" && n[0] != '.') Prune(n);
  }
  // Bundles no version uses: uploads whose install was cut short, and those
  // of versions whose prune was.
  std::vector<std::string> used;
  for (const auto& v : List()) used.push_back(v.bundle_sha256 + ".herd");
  for (const auto& e : fs::directory_iterator(dir_ + "/bundles", ec)) {
    const std::string n = e.path().filename().string();
    if (e.path().extension() == ".part") continue;  // resumable: TrimPartials decides
    if (std::find(used.begin(), used.end(), n) == used.end() && ::unlink(e.path().c_str()) == 0) {
      ++removed;
    }
  }
  removed += TrimPartials(dir_ + "/bundles", kKeepPartials, kPartialMaxAge);
  if (removed > 0) {
    spdlog::info("apps: removed {} folder(s) and bundle(s) an interrupted install left", removed);
  }
  return Status::Ok();
}

std::vector<InstalledVersionInfo> AppStore::Versions(const std::string& name) const {
  std::vector<InstalledVersionInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ + "/" + name, ec)) {
    const std::string seq = e.path().filename().string();
    if (!IsSequence(seq)) continue;
    auto text = ReadFileToString(e.path().string() + "/install.json", 1 << 20);
    auto v = text.ok() ? FromJson(*text) : Result<InstalledVersionInfo>(text.status());
    if (!v.ok()) {
      spdlog::warn("apps: {}: {}", e.path().string(), v.status().message());
      continue;
    }
    out.push_back(std::move(*v));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.sequence > b.sequence; });
  return out;
}

std::vector<InstalledVersionInfo> AppStore::List() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& app : fs::directory_iterator(dir_, ec)) {
    const std::string n = app.path().filename().string();
    if (app.is_directory() && n != "bundles" && n[0] != '.') names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  std::vector<InstalledVersionInfo> out;
  for (const auto& n : names) {
    auto v = Versions(n);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

bool AppStore::Installed(const std::string& sha256, InstalledVersionInfo* out) const {
  for (auto& v : List()) {
    if (v.bundle_sha256 == sha256) {
      *out = std::move(v);
      return true;
    }
  }
  return false;
}

void AppStore::RemoveUnusedBundle(const std::string& sha256) {
  InstalledVersionInfo unused;
  if (!Installed(sha256, &unused)) ::unlink(BundlePath(sha256).c_str());
}

Result<InstalledVersionInfo> AppStore::Install(const std::string& sha256, bool allow_downgrade) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string bundle = BundlePath(sha256);
  // Whatever is refused, the bundle goes unless a version uses it.
  struct Cleanup {
    AppStore* store;
    const std::string& sha;
    bool keep = false;
    ~Cleanup() {
      if (!keep) store->RemoveUnusedBundle(sha);
    }
  } cleanup{this, sha256};

  auto head = app::ReadHead(bundle);
  if (!head.ok()) {
    return Status::Invalid("not a herd app bundle: " + head.status().message());
  }
  const app::AppSpec& a = head->manifest.app;
  const std::string what = fmt::format("{} {} (sequence {})", a.name, a.version, a.sequence);
  if (settings_.publishers.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  "this device trusts no app publisher yet (apps.publishers in its agent config)");
  }
  auto signers = app::CheckSignatures(*head, settings_.publishers);
  if (!signers.ok())
    return Status(signers.status().code(), what + ": " + signers.status().message());
  CrashPoint("install:verified");

  // The owner's policy: what this device grants at most.
  auto denied = [&](const std::string& why) {
    return Status(StatusCode::kPermissionDenied, what + ": " + why);
  };
  if (a.network == "outbound" && !settings_.allow_outbound) {
    return denied(
        "asks for permissions.network: outbound, which this device does not grant "
        "(apps.allow_outbound)");
  }
  if (a.memory_bytes > settings_.max_memory) {
    return denied(
        fmt::format("asks for {} bytes of memory; this device grants at most {} "
                    "(apps.max_memory)",
                    a.memory_bytes, settings_.max_memory));
  }
  if (a.pids > settings_.max_pids) {
    return denied(fmt::format("asks for {} pids; this device grants at most {} (apps.max_pids)",
                              a.pids, settings_.max_pids));
  }

  const auto versions = Versions(a.name);
  for (const auto& v : versions) {
    if (v.sequence != a.sequence) continue;
    if (v.bundle_sha256 == sha256) {
      auto same = v;
      same.already_installed = true;
      cleanup.keep = true;
      return same;
    }
    return Status(StatusCode::kAlreadyExists,
                  fmt::format("{}: sequence {} is installed from another bundle ({}…, version {}); "
                              "a new build needs a new sequence",
                              what, v.sequence, v.bundle_sha256.substr(0, 12), v.version));
  }
  if (!versions.empty() && versions.front().sequence > a.sequence && !allow_downgrade) {
    return Status(StatusCode::kFailedPrecondition,
                  fmt::format("{} is older than the installed {} (sequence {}); install it with "
                              "--allow-downgrade to go back",
                              what, versions.front().version, versions.front().sequence));
  }

  // Extract into a temporary folder, then rename it into place.
  const std::string app_dir = dir_ + "/" + a.name;
  const std::string final_dir = app_dir + "/" + std::to_string(a.sequence);
  const std::string tmp = app_dir + "/.tmp-" + std::to_string(a.sequence);
  if (Status s = MakeDir(app_dir); !s.ok()) return s;
  RemoveTree(tmp);
  if (Status s = MakeDir(tmp); !s.ok()) return s;
  if (Status s = MakeDir(tmp + "/files"); !s.ok()) return s;
  Extractor extractor(tmp + "/files");
  app::PayloadLimits limits;
  limits.max_entries = settings_.max_entries;
  limits.max_bytes = settings_.max_expanded_bytes;
  Status s = app::VerifyPayload(bundle, head->manifest, limits,
                                [&](const app::FileEntry& f, std::string_view data, bool last) {
                                  return extractor.Take(f, data, last);
                                });
  if (!s.ok()) {
    RemoveTree(tmp);
    // The store's path means nothing to the caller.
    std::string why = s.message();
    if (why.rfind(bundle + ": ", 0) == 0) why = "bundle: " + why.substr(bundle.size() + 2);
    return Status(s.code() == StatusCode::kInternal ? s.code() : StatusCode::kInvalidArgument,
                  what + ": " + why);
  }
  InstalledVersionInfo info;
  info.name = a.name;
  info.version = a.version;
  info.sequence = a.sequence;
  info.bundle_sha256 = sha256;
  info.files = head->manifest.files.size();
  for (const auto& f : head->manifest.files) info.bytes += f.size;
  info.installed_unix = static_cast<int64_t>(std::time(nullptr));
  info.signers = *signers;
  for (const auto& [file, text] :
       {std::pair<const char*, std::string>{"manifest.json", head->manifest_text},
        {"install.json", ToJson(info).dump(2) + "\n"}}) {
    if (Status w = WriteFileAtomic(tmp + "/" + file, text, 0644); !w.ok()) {
      RemoveTree(tmp);
      return w;
    }
  }
  // Every file was fsynced as written; the folders too before the rename.
  {
    UniqueFd fd(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || ::syncfs(fd.get()) != 0) {
      RemoveTree(tmp);
      return Errno("cannot sync " + tmp);
    }
  }
  CrashPoint("install:extracted");
  RemoveTree(final_dir);  // a folder without install.json (not listed) would block the rename
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    Status e = Errno("cannot rename " + tmp + " to " + final_dir);
    RemoveTree(tmp);
    return e;
  }
  if (Status d = SyncDir(app_dir); !d.ok()) return d;
  cleanup.keep = true;
  CrashPoint("install:renamed");
  spdlog::info("apps: installed {} from {}… ({} files, {} bytes, signed by {})", what,
               sha256.substr(0, 12), info.files, info.bytes, fmt::join(info.signers, ", "));
  Prune(a.name);
  return info;
}

// Keeps the `keep_versions` most recently installed versions of `name`,
// and the protected ones.
void AppStore::Prune(const std::string& name) {
  auto versions = Versions(name);
  if (versions.size() <= static_cast<size_t>(settings_.keep_versions)) return;
  const std::set<uint64_t> keep = protected_ ? protected_(name) : std::set<uint64_t>{};
  // Protected versions first, then the most recently installed.
  std::stable_sort(versions.begin(), versions.end(), [&](const auto& a, const auto& b) {
    const bool pa = keep.count(a.sequence) > 0, pb = keep.count(b.sequence) > 0;
    if (pa != pb) return pa;
    return a.installed_unix != b.installed_unix ? a.installed_unix > b.installed_unix
                                                : a.sequence > b.sequence;
  });
  const std::string app_dir = dir_ + "/" + name;
  const size_t kept = std::max(static_cast<size_t>(settings_.keep_versions), keep.size());
  for (size_t i = kept; i < versions.size(); ++i) {
    const auto& v = versions[i];
    const std::string seq = std::to_string(v.sequence);
    const std::string trash = app_dir + "/.trash-" + seq;
    // Renamed away first: a half-deleted version is never listed.
    if (::rename((app_dir + "/" + seq).c_str(), trash.c_str()) != 0) continue;
    (void)SyncDir(app_dir);
    CrashPoint("install:pruning");
    RemoveTree(trash);
    RemoveUnusedBundle(v.bundle_sha256);
    spdlog::info("apps: removed {} {} (sequence {}): {} newer installed", name, v.version,
                 v.sequence, settings_.keep_versions);
  }
}

void AppStore::SetProtected(std::function<std::set<uint64_t>(const std::string&)> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  protected_ = std::move(fn);
}

}  // namespace herd::agent
