#include "control/fleet_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "common/app/manifest.h"
#include "common/file.h"
#include "common/text.h"
#include "common/yaml_check.h"
#include "control/rollout.h"

namespace herd::control {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;  // a spec's file: configuration, not payload

// Parses one spec, keeping its name, folder and the first error.
class SpecReader {
 public:
  SpecReader(std::string source, std::string base) : source_(std::move(source)), base_(base) {}

  // At `n`, or with no line for a node that is not there.
  Status Error(const YAML::Node& n, const std::string& what) const {
    return YamlError(source_, n.IsDefined() ? n.Mark() : YAML::Mark::null_mark(), what);
  }

  Status Keys(const YAML::Node& n, const std::set<std::string>& known,
              const std::string& where) const {
    if (!n.IsMap()) return Error(n, where + " must be a mapping");
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
      if (!known.count(key)) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        return Error(it->first,
                     "unknown field '" + Excerpt(key) + "' in " + where + " (known: " + list + ")");
      }
    }
    return Status::Ok();
  }

  Status Text(const YAML::Node& n, const std::string& field, std::string* out) const {
    if (!n) return Status::Ok();
    if (!n.IsScalar()) return Error(n, field + " must be text");
    *out = n.Scalar();
    if (out->find('\0') != std::string::npos) return Error(n, field + " holds a NUL");
    return Status::Ok();
  }

  Status Bool(const YAML::Node& n, const std::string& field, bool* out) const {
    if (!n) return Status::Ok();
    if (!n.IsScalar() || (n.Scalar() != "true" && n.Scalar() != "false")) {
      return Error(n, field + " must be true or false");
    }
    *out = n.Scalar() == "true";
    return Status::Ok();
  }

  // An absolute, canonical path: no "." or ".." parts, no doubled '/'.
  Status Path(const YAML::Node& n, const std::string& field, std::string* out) const {
    if (Status s = Text(n, field, out); !s.ok()) return s;
    const std::string& p = *out;
    bool ok = p.size() > 1 && p.size() <= 4096 && p[0] == '/' && p.back() != '/' &&
              p.find("//") == std::string::npos;
    for (size_t at = 0; ok && at != std::string::npos;) {
      const size_t next = p.find('/', at + 1);
      const std::string part = p.substr(at + 1, next == std::string::npos ? next : next - at - 1);
      ok = part != "." && part != "..";
      at = next;
    }
    if (!ok) return Error(n, field + " '" + Excerpt(p) + "' must be an absolute, canonical path");
    return Status::Ok();
  }

  // Octal text ("0644"), at most 07777.
  Status Mode(const YAML::Node& n, std::string* out) const {
    if (Status s = Text(n, "mode", out); !s.ok() || out->empty()) return s;
    if (out->size() > 5 || out->find_first_not_of("01234567") != std::string::npos ||
        std::stoul(*out, nullptr, 8) > 07777) {
      return Error(n, "mode '" + Excerpt(*out) + "' must be octal, like \"0644\"");
    }
    return Status::Ok();
  }

  // A user or group name, or a number.
  Status Account(const YAML::Node& n, const std::string& field, std::string* out) const {
    if (Status s = Text(n, field, out); !s.ok() || out->empty()) return s;
    const std::string& v = *out;
    const bool ok =
        v.size() <= 32 && (std::isalnum(static_cast<unsigned char>(v[0])) || v[0] == '_') &&
        std::all_of(v.begin(), v.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        });
    if (!ok) return Error(n, field + " '" + Excerpt(v) + "' is not a user or group name");
    return Status::Ok();
  }

  Status File(const YAML::Node& n, SpecFile* f) const {
    if (Status s = Keys(
            n,
            {"path", "content", "source", "template", "secret", "mode", "owner", "group", "root"},
            "a file");
        !s.ok()) {
      return s;
    }
    f->line = n.Mark().line + 1;
    if (!n["path"]) return Error(n, "a file needs a path");
    Status s = Path(n["path"], "path", &f->path);
    if (s.ok()) s = Text(n["content"], "content", &f->content);
    if (s.ok()) s = Text(n["source"], "source", &f->source);
    if (s.ok()) s = Bool(n["template"], "template", &f->templated);
    if (s.ok()) s = Bool(n["secret"], "secret", &f->secret);
    if (s.ok()) s = Bool(n["root"], "root", &f->root);
    if (s.ok()) s = Mode(n["mode"], &f->mode);
    if (s.ok()) s = Account(n["owner"], "owner", &f->owner);
    if (s.ok()) s = Account(n["group"], "group", &f->group);
    if (!s.ok()) return s;
    if (!!n["content"] == !!n["source"]) {
      return Error(n, "file " + f->path + " needs exactly one of content and source");
    }
    if (!f->source.empty()) {
      const std::string local = f->source[0] == '/' ? f->source : base_ + "/" + f->source;
      auto bytes = ReadFileToString(local, kMaxFileBytes);
      if (!bytes.ok()) return Error(n["source"], "source: " + bytes.status().message());
      f->content = *bytes;
    }
    if (f->content.size() > kMaxFileBytes) {
      return Error(n, "file " + f->path + " is larger than 1 MiB");
    }
    return Status::Ok();
  }

  Status Directory(const YAML::Node& n, SpecDirectory* d) const {
    if (Status s = Keys(n, {"path", "mode", "owner", "group", "root"}, "a directory"); !s.ok()) {
      return s;
    }
    d->line = n.Mark().line + 1;
    if (!n["path"]) return Error(n, "a directory needs a path");
    Status s = Path(n["path"], "path", &d->path);
    if (s.ok()) s = Mode(n["mode"], &d->mode);
    if (s.ok()) s = Account(n["owner"], "owner", &d->owner);
    if (s.ok()) s = Account(n["group"], "group", &d->group);
    if (s.ok()) s = Bool(n["root"], "root", &d->root);
    return s;
  }

  Status Command(const YAML::Node& n, SpecCommand* c) const {
    if (Status s =
            Keys(n, {"name", "run", "shell", "creates", "unless", "onlyif", "root"}, "a command");
        !s.ok()) {
      return s;
    }
    c->line = n.Mark().line + 1;
    Status s = Text(n["name"], "name", &c->name);
    if (s.ok() && (c->name.empty() || c->name.size() > 128)) {
      s = Error(n, "a command needs a name (1 to 128 characters): its key in the merge");
    }
    if (s.ok()) s = Text(n["shell"], "shell", &c->shell);
    if (s.ok() && n["creates"]) s = Path(n["creates"], "creates", &c->creates);
    if (s.ok()) s = Text(n["unless"], "unless", &c->unless);
    if (s.ok()) s = Text(n["onlyif"], "onlyif", &c->onlyif);
    if (s.ok()) s = Bool(n["root"], "root", &c->root);
    if (!s.ok()) return s;
    if (const YAML::Node run = n["run"]) {
      if (!run.IsSequence() || run.size() == 0 || run.size() > 256) {
        return Error(run, "run must be a list: the program and its arguments");
      }
      for (const auto& a : run) {
        std::string arg;
        if (Status t = Text(a, "run", &arg); !t.ok()) return t;
        c->run.push_back(arg);
      }
    }
    if (c->run.empty() == c->shell.empty()) {
      return Error(n, "command " + c->name + " needs exactly one of run and shell");
    }
    return Status::Ok();
  }

  Status App(const YAML::Node& n, SpecApp* a) const {
    if (Status s =
            Keys(n, {"name", "version", "channel", "canary", "batch", "max_failures"}, "an app");
        !s.ok()) {
      return s;
    }
    a->line = n.Mark().line + 1;
    Status s = Text(n["name"], "name", &a->name);
    if (s.ok()) s = Text(n["version"], "version", &a->version);
    if (s.ok()) s = Text(n["channel"], "channel", &a->channel);
    if (s.ok()) s = Text(n["batch"], "batch", &a->batch);
    if (!s.ok()) return s;
    if (std::string e = app::AppNameError(a->name); !e.empty()) {
      return Error(n["name"] ? n["name"] : n, "app name " + e);
    }
    if (std::string e = app::AppVersionError(a->version); !e.empty()) {
      return Error(n["version"] ? n["version"] : n, "app " + a->name + ": version " + e);
    }
    try {
      if (n["canary"]) a->canary = n["canary"].as<size_t>();
      if (n["max_failures"]) a->max_failures = n["max_failures"].as<size_t>();
    } catch (const YAML::Exception&) {
      return Error(n, "app " + a->name + ": canary and max_failures must be whole numbers");
    }
    if (auto w = PlanWaves(1, a->canary, a->batch); !w.ok()) {
      return Error(n["batch"] ? n["batch"] : n, "app " + a->name + ": " + w.status().message());
    }
    return Status::Ok();
  }

  template <class T, class F>
  Status List(const YAML::Node& n, const std::string& field, std::vector<T>* out, F one) const {
    if (!n) return Status::Ok();
    if (!n.IsSequence()) return Error(n, field + " must be a list");
    for (const auto& item : n) {
      T v;
      if (Status s = (this->*one)(item, &v); !s.ok()) return s;
      out->push_back(std::move(v));
    }
    return Status::Ok();
  }

  Status Entry(const YAML::Node& n, SpecEntry* e) const {
    if (Status s =
            Keys(n, {"hosts", "labels", "files", "directories", "commands", "apps"}, "an entry");
        !s.ok()) {
      return s;
    }
    e->line = n.Mark().line + 1;
    if (Status s = Text(n["hosts"], "hosts", &e->hosts); !s.ok()) return s;
    if (e->hosts.empty()) return Error(n, "an entry needs hosts: a selector (all, @web, role=db)");
    auto sel = ParseSelector(e->hosts);
    if (!sel.ok()) return Error(n["hosts"], sel.status().message());
    e->selector = *sel;
    if (const YAML::Node labels = n["labels"]) {
      if (!labels.IsMap()) return Error(labels, "labels must be a mapping of name: value");
      for (auto it = labels.begin(); it != labels.end(); ++it) {
        std::string k, v;
        if (Status s = Text(it->first, "a label name", &k); !s.ok()) return s;
        if (Status s = Text(it->second, "label " + k, &v); !s.ok()) return s;
        if (k.empty() || k.size() > 63 || v.size() > 255) {
          return Error(it->first, "label '" + Excerpt(k) + "': names 1 to 63, values up to 255");
        }
        e->labels[k] = v;
      }
    }
    Status s = List(n["files"], "files", &e->files, &SpecReader::File);
    if (s.ok()) s = List(n["directories"], "directories", &e->directories, &SpecReader::Directory);
    if (s.ok()) s = List(n["commands"], "commands", &e->commands, &SpecReader::Command);
    if (s.ok()) s = List(n["apps"], "apps", &e->apps, &SpecReader::App);
    if (!s.ok()) return s;
    std::set<std::string> names;
    for (const auto& c : e->commands) {
      if (!names.insert(c.name).second) {
        return Status::Invalid(source_ + ":" + std::to_string(c.line) + ": command name '" +
                               c.name + "' repeats in this entry");
      }
    }
    return Status::Ok();
  }

 private:
  std::string source_, base_;
};

}  // namespace

Result<FleetSpec> ParseFleetSpec(const std::string& text, const std::string& source,
                                 const std::string& base_dir) {
  auto doc = LoadOneDocument(text, source, "a fleet spec");
  if (!doc.ok()) return doc.status();
  const YAML::Node root = *doc;
  if (Status s = CheckUniqueKeys(root, source); !s.ok()) return s;
  SpecReader r(source, base_dir);
  FleetSpec spec;
  spec.source = source;
  try {
    if (Status s = r.Keys(root, {"entries"}, "the spec"); !s.ok()) return s;
    const YAML::Node entries = root["entries"];
    if (!entries || !entries.IsSequence()) {
      return r.Error(root, "the spec needs entries: a list of {hosts: SELECTOR, ...}");
    }
    for (const auto& n : entries) {
      SpecEntry e;
      if (Status s = r.Entry(n, &e); !s.ok()) return s;
      spec.entries.push_back(std::move(e));
    }
  } catch (const YAML::Exception& e) {
    return YamlError(source, e.mark, e.msg);
  }
  return spec;
}

Result<FleetSpec> LoadFleetSpec(const std::string& path) {
  auto text = ReadFileToString(path, 8 << 20);
  if (!text.ok()) return text.status();
  return ParseFleetSpec(*text, path, ParentDir(path));
}

Result<std::map<std::string, HostPlan>> PlanHosts(const FleetSpec& spec, const Inventory& inv) {
  std::map<std::string, HostPlan> plans;
  // Later selectors see the labels earlier entries give.
  Inventory view = inv;
  for (const auto& e : spec.entries) {
    auto picked = e.selector->Evaluate(view);
    if (!picked.ok()) {
      return Status::Invalid(spec.source + ":" + std::to_string(e.line) + ": hosts '" + e.hosts +
                             "': " + picked.status().message());
    }
    for (size_t i : *picked) {
      HostPlan& p = plans[view.hosts[i].name];
      for (const auto& [k, v] : e.labels) p.labels[k] = view.hosts[i].labels[k] = v;
      for (const auto& f : e.files) p.files[f.path] = f;
      for (const auto& d : e.directories) p.directories[d.path] = d;
      for (const auto& a : e.apps) p.apps[a.name] = a;
      for (const auto& c : e.commands) {
        auto same = std::find_if(p.commands.begin(), p.commands.end(),
                                 [&](const SpecCommand& x) { return x.name == c.name; });
        if (same == p.commands.end()) {
          p.commands.push_back(c);
        } else {
          *same = c;  // replaced in place: the order of first appearance stays
        }
      }
    }
  }
  return plans;
}

}  // namespace herd::control
