#include "agent/apply/apply.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "agent/files/file_writer.h"
#include "agent/host/host_info.h"
#include "common/app/manifest.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/template.h"
#include "common/text.h"
#include "common/text_diff.h"

namespace herd::agent {
namespace {

constexpr int kMaxItems = 1000;            // of each kind
constexpr size_t kMaxFileBytes = 1 << 20;  // a file's content, as the spec allows
constexpr size_t kMaxLine = 128 * 1024;    // an argument or shell line

// An absolute, canonical path ("/etc/motd"), or the error naming `what`.
Status CheckPath(const std::string& path, const std::string& what) {
  if (Status s = CheckAbsolutePath(path, what); !s.ok()) return s;
  if (path == "/" || !app::IsCanonicalPath(path.substr(1))) {
    return Status::Invalid(what + ": '" + Excerpt(path) + "' is not an absolute, canonical path");
  }
  return Status::Ok();
}

// "0644" and the like: at most 4 octal digits.
std::optional<mode_t> ParseMode(const std::string& text) {
  if (text.empty() || text.size() > 4 || text.find_first_not_of("01234567") != std::string::npos) {
    return std::nullopt;
  }
  return static_cast<mode_t>(std::stoul(text, nullptr, 8));
}

Status CheckOwner(const std::string& owner, const std::string& group, const std::string& mode,
                  const std::string& what) {
  if (Status s = CheckText(owner, what + " owner", 256); !s.ok()) return s;
  if (Status s = CheckText(group, what + " group", 256); !s.ok()) return s;
  if (!mode.empty() && !ParseMode(mode)) {
    return Status::Invalid(what + ": mode '" + Excerpt(mode) + "' is not octal (e.g. 0644)");
  }
  return Status::Ok();
}

// The wanted mode, owner and group of a file or directory.
struct Wanted {
  std::optional<mode_t> mode;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

Result<Wanted> WantedOf(const std::string& mode, const std::string& owner,
                        const std::string& group) {
  Wanted w;
  if (!mode.empty()) w.mode = ParseMode(mode);
  if (!owner.empty()) {
    auto uid = LookupUid(owner);
    if (!uid.ok()) return uid.status();
    w.uid = *uid;
  }
  if (!group.empty()) {
    auto gid = LookupGid(group);
    if (!gid.ok()) return gid.status();
    w.gid = *gid;
  }
  return w;
}

// What differs in mode, owner and group between `st` and `w` ("" when nothing).
std::string MetaDiff(const struct stat& st, const Wanted& w) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (w.mode && (st.st_mode & 07777) != *w.mode) {
    add(fmt::format("mode {:04o} -> {:04o}", st.st_mode & 07777, *w.mode));
  }
  if (w.uid && st.st_uid != *w.uid) add(fmt::format("owner {} -> {}", st.st_uid, *w.uid));
  if (w.gid && st.st_gid != *w.gid) add(fmt::format("group {} -> {}", st.st_gid, *w.gid));
  return out;
}

Status SetMeta(const std::string& path, const Wanted& w) {
  if ((w.uid || w.gid) && ::chown(path.c_str(), w.uid ? *w.uid : static_cast<uid_t>(-1),
                                  w.gid ? *w.gid : static_cast<gid_t>(-1)) != 0) {
    return Status(StatusCode::kPermissionDenied,
                  "cannot change the owner of " + path + ": " + std::strerror(errno));
  }
  if (w.mode && ::chmod(path.c_str(), *w.mode) != 0) {
    return Status(StatusCode::kPermissionDenied,
                  "cannot change the mode of " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

class Applier {
 public:
  Applier(const v1::ApplyRequest& req, ApplyEnv& env, v1::ApplyReply* reply)
      : req_(req), env_(env), reply_(reply) {}

  void Run() {
    Labels();
    for (const auto& d : req_.directories()) Directory(d);
    for (const auto& f : req_.files()) File(f);
    for (const auto& c : req_.commands()) Command(c);
    for (const auto& [k, v] : env_.labels->Merged(*env_.owner_labels)) {
      (*reply_->mutable_labels())[k] = v;
    }
  }

 private:
  v1::ApplyItem* Item(const char* kind, const std::string& key) {
    auto* item = reply_->add_items();
    item->set_kind(kind);
    item->set_key(key);
    return item;
  }
  void Set(v1::ApplyItem* item, const char* outcome, const std::string& detail) {
    item->set_outcome(outcome);
    item->set_detail(detail);
    if (std::string(outcome) == "failed") failed_ = true;
  }
  // After a failure, the items after it are skipped: true when skipped.
  bool Skipped(v1::ApplyItem* item) {
    if (failed_) Set(item, "skipped", "an earlier item failed");
    return failed_;
  }
  // The account for an item, or false after reporting the refusal.
  const Account* AccountFor(v1::ApplyItem* item, bool root) {
    auto a = env_.account(root);
    if (a.ok()) return *a;
    Set(item, "failed", "refused: needs root, and " + a.status().message());
    return nullptr;
  }

  void Labels() {
    std::map<std::string, std::string> change;
    const auto kept = env_.labels->Kept();
    for (const auto& [k, v] : req_.labels()) {
      auto* item = Item("label", k);
      if (auto owner = env_.owner_labels->find(k); owner != env_.owner_labels->end()) {
        if (owner->second == v) {
          Set(item, "ok", k + "=" + v + " (the owner's)");
        } else {
          Set(item, "failed", "refused: the owner's agent config sets " + k + "=" + owner->second);
        }
        continue;
      }
      if (auto it = kept.find(k); it != kept.end() && it->second == v) {
        Set(item, "ok", k + "=" + v);
        continue;
      }
      change[k] = v;
      Set(item, "changed", k + "=" + v);
    }
    if (change.empty() || req_.check()) return;
    if (Status s = env_.labels->Set(change); !s.ok()) {
      for (auto& item : *reply_->mutable_items()) {
        if (item.kind() == "label" && change.count(item.key())) {
          Set(&item, "failed", "cannot keep the labels: " + s.message());
        }
      }
    }
  }

  void Directory(const v1::ApplyDirectory& d) {
    auto* item = Item("directory", d.path());
    if (Skipped(item)) return;
    const Account* account = AccountFor(item, d.root());
    if (!account) return;
    auto w = WantedOf(d.mode(), d.owner(), d.group());
    if (!w.ok()) return Set(item, "failed", w.status().message());
    ScopedFsIdentity as(*account);
    struct stat st {};
    if (::lstat(d.path().c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Set(item, "failed", d.path() + " exists and is not a directory");
      const std::string meta = MetaDiff(st, *w);
      if (meta.empty()) return Set(item, "ok", "");
      if (!req_.check()) {
        if (Status s = SetMeta(d.path(), *w); !s.ok()) return Set(item, "failed", s.message());
      }
      return Set(item, "changed", meta);
    }
    if (errno != ENOENT) {
      return Set(item, "failed", "cannot see " + d.path() + ": " + std::strerror(errno));
    }
    if (req_.check()) return Set(item, "changed", "to be made");
    if (::mkdir(d.path().c_str(), w->mode.value_or(0755)) != 0) {
      return Set(item, "failed", "cannot make " + d.path() + ": " + std::strerror(errno));
    }
    Wanted after = *w;
    after.mode = w->mode.value_or(0755);  // whatever the umask did
    if (Status s = SetMeta(d.path(), after); !s.ok()) return Set(item, "failed", s.message());
    Set(item, "changed", "made");
  }

  void File(const v1::ApplyFile& f) {
    auto* item = Item("file", f.path());
    if (Skipped(item)) return;
    const Account* account = AccountFor(item, f.root());
    if (!account) return;
    auto w = WantedOf(f.mode(), f.owner(), f.group());
    if (!w.ok()) return Set(item, "failed", w.status().message());
    std::string content = f.content();
    if (f.template_()) {
      auto rendered = RenderTemplate(f.content(), Vars(), f.path());
      if (!rendered.ok()) return Set(item, "failed", rendered.status().message());
      content = std::move(*rendered);
    }
    std::string before;
    bool exists = false;
    struct stat st {};
    {
      ScopedFsIdentity as(*account);
      if (::lstat(f.path().c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
          return Set(item, "failed", f.path() + " exists and is not a regular file");
        }
        auto text = ReadFileToString(f.path(), kMaxFileBytes + 1);
        if (!text.ok()) return Set(item, "failed", text.status().message());
        before = std::move(*text);
        exists = true;
      } else if (errno != ENOENT) {
        return Set(item, "failed", "cannot see " + f.path() + ": " + std::strerror(errno));
      }
    }
    std::string what;
    if (!exists) {
      what = fmt::format("new file, {} bytes", content.size());
    } else {
      if (before != content)
        what = fmt::format("content ({} -> {} bytes)", before.size(), content.size());
      const std::string meta = MetaDiff(st, *w);
      if (!meta.empty()) what += (what.empty() ? "" : ", ") + meta;
    }
    if (what.empty()) return Set(item, "ok", "");
    if (req_.diff() && before != content) {
      item->set_diff(f.secret() ? fmt::format("--- {}\n+++ {}\n(secret: its content differs)\n",
                                              f.path(), f.path())
                                : UnifiedDiff(before, content, f.path()));
    }
    if (req_.check()) return Set(item, "changed", what);
    FileOptions o;
    o.mode = w->mode.value_or(0644);
    o.set_mode = w->mode.has_value();
    o.uid = w->uid;
    o.gid = w->gid;
    o.account = account;
    auto writer = AtomicFileWriter::Open(f.path(), o, content.size(), Sha256Hex(content));
    Status s = writer.ok() ? (*writer)->Write(content) : writer.status();
    if (s.ok()) s = (*writer)->Commit();
    if (!s.ok()) return Set(item, "failed", s.message());
    Set(item, "changed", what);
  }

  void Command(const v1::ApplyCommand& c) {
    auto* item = Item("command", c.name());
    if (Skipped(item)) return;
    const Account* account = AccountFor(item, c.root());
    if (!account) return;
    if (!c.creates().empty()) {
      ScopedFsIdentity as(*account);
      struct stat st {};
      if (::lstat(c.creates().c_str(), &st) == 0)
        return Set(item, "ok", "creates: " + c.creates() + " exists");
    }
    if (!c.unless().empty()) {
      const CommandRun r = Shell(c.unless(), *account);
      if (!r.error.empty()) return Set(item, "failed", "unless: " + r.error);
      if (r.exit_code == 0) return Set(item, "ok", "unless: exited 0");
    }
    if (!c.onlyif().empty()) {
      const CommandRun r = Shell(c.onlyif(), *account);
      if (!r.error.empty()) return Set(item, "failed", "onlyif: " + r.error);
      if (r.exit_code != 0) return Set(item, "ok", fmt::format("onlyif: exited {}", r.exit_code));
    }
    if (req_.check()) return Set(item, "changed", "to be run");
    ExecSpec spec = Spec(*account);
    spec.argv.assign(c.argv().begin(), c.argv().end());
    spec.shell = c.shell();
    const CommandRun r = env_.run(spec);
    if (!r.error.empty()) return Set(item, "failed", r.error);
    if (r.exit_code != 0) {
      return Set(item, "failed",
                 fmt::format("exited {}{}{}", r.exit_code, r.output.empty() ? "" : ": ", r.output));
    }
    Set(item, "changed", "ran (exit 0)");
  }

  ExecSpec Spec(const Account& account) const {
    ExecSpec spec;
    spec.account = &account;
    spec.cwd = "/";
    spec.timeout = env_.command_timeout;
    spec.max_output_bytes = 64 << 10;
    return spec;
  }
  CommandRun Shell(const std::string& line, const Account& account) {
    ExecSpec spec = Spec(account);
    spec.shell = line;
    return env_.run(spec);
  }

  // Made once, after the labels: the same for every templated file.
  const TemplateVars& Vars() {
    if (vars_) return *vars_;
    TemplateVars& v = vars_.emplace();
    v.name = req_.host_name();
    v.address = req_.host_address();
    v.labels = env_.labels->Merged(*env_.owner_labels);
    for (const auto& [k, val] : req_.template_labels()) v.labels.emplace(k, val);
    v.facts = env_.facts;
    return v;
  }

  const v1::ApplyRequest& req_;
  ApplyEnv& env_;
  v1::ApplyReply* reply_;
  bool failed_ = false;
  std::optional<TemplateVars> vars_;
};

}  // namespace

Status CheckApplyRequest(const v1::ApplyRequest& req) {
  if (req.labels_size() > kMaxItems || req.directories_size() > kMaxItems ||
      req.files_size() > kMaxItems || req.commands_size() > kMaxItems ||
      req.template_labels_size() > kMaxItems) {
    return Status::Invalid(fmt::format("at most {} items of each kind", kMaxItems));
  }
  for (const auto& [k, v] : req.labels()) {
    if (!IsLabelName(k))
      return Status::Invalid("label name '" + Excerpt(k) + "' (1 to 63 of A-Z a-z 0-9 . _ -)");
    if (!IsLabelValue(v))
      return Status::Invalid("label " + k +
                             ": a value of at most 255 bytes, no control characters");
  }
  for (const auto& [k, v] : req.template_labels()) {
    if (!IsLabelName(k) || !IsLabelValue(v))
      return Status::Invalid("template label '" + Excerpt(k) + "'");
  }
  if (Status s = CheckText(req.host_name(), "host_name", 256); !s.ok()) return s;
  if (Status s = CheckText(req.host_address(), "host_address", 512); !s.ok()) return s;
  for (const auto& d : req.directories()) {
    if (Status s = CheckPath(d.path(), "directory"); !s.ok()) return s;
    if (Status s = CheckOwner(d.owner(), d.group(), d.mode(), "directory " + d.path()); !s.ok())
      return s;
  }
  for (const auto& f : req.files()) {
    if (Status s = CheckPath(f.path(), "file"); !s.ok()) return s;
    if (Status s = CheckOwner(f.owner(), f.group(), f.mode(), "file " + f.path()); !s.ok())
      return s;
    if (f.content().size() > kMaxFileBytes) {
      return Status::Invalid("file " + f.path() + ": content larger than 1 MiB");
    }
  }
  for (const auto& c : req.commands()) {
    if (Status s = CheckText(c.name(), "command name", 256); !s.ok()) return s;
    if (c.name().empty()) return Status::Invalid("a command without a name");
    const std::string what = "command " + c.name();
    if ((c.argv_size() == 0) == c.shell().empty()) {
      return Status::Invalid(what + ": give either argv or shell");
    }
    if (c.argv_size() > 4096) return Status::Invalid(what + ": more than 4096 arguments");
    for (const auto& a : c.argv()) {
      if (Status s = CheckText(a, what + " argument", kMaxLine); !s.ok()) return s;
    }
    if (c.argv_size() > 0 && c.argv(0).empty()) return Status::Invalid(what + ": argv[0] is empty");
    for (const auto* line : {&c.shell(), &c.unless(), &c.onlyif()}) {
      if (Status s = CheckText(*line, what, kMaxLine); !s.ok()) return s;
    }
    if (!c.creates().empty()) {
      if (Status s = CheckPath(c.creates(), what + " creates"); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

void RunApply(const v1::ApplyRequest& req, ApplyEnv& env, v1::ApplyReply* reply) {
  Applier(req, env, reply).Run();
}

std::map<std::string, std::string> TemplateFacts(const std::string& state_dir) {
  const HostFacts f = ReadHostFacts(state_dir);
  return {{"hostname", f.hostname},
          {"os", f.os},
          {"kernel", f.kernel},
          {"arch", f.arch},
          {"cpus", std::to_string(f.cpus)},
          {"memory_bytes", std::to_string(f.mem_total)},
          {"agent_version", HERD_VERSION}};
}

}  // namespace herd::agent
