#include "common/app/manifest.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "common/duration.h"
#include "common/text.h"
#include "common/yaml_check.h"

namespace herd::app {
namespace {

using nlohmann::json;

// Checks of single values, shared by app.yaml and the manifest's JSON: ""
// when fine, else what is wrong.
std::string CheckName(const std::string& s) {
  if (s.empty() || s.size() > 63) return "must be 1 to 63 characters";
  if (!std::isalnum(static_cast<unsigned char>(s[0]))) return "must start with a letter or digit";
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return "may hold only a-z, 0-9 and '-'";
    }
  }
  return "";
}
std::string CheckVersion(const std::string& s) {
  if (s.empty() || s.size() > 64) return "must be 1 to 64 characters";
  for (char c : s) {
    if (!std::isgraph(static_cast<unsigned char>(c)))
      return "may not hold spaces or control characters";
  }
  return "";
}
std::string CheckOneOf(const std::string& s, std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return "";
    list += std::string(list.empty() ? "" : ", ") + a;
  }
  return "must be one of " + list;
}
std::string CheckArgv(const std::vector<std::string>& v, bool required) {
  if (required && v.empty()) return "must name a program";
  if (v.size() > 256) return "has more than 256 arguments";
  for (const auto& a : v) {
    if (a.size() > 4096 || a.find('\0') != std::string::npos)
      return "holds an argument that is too long or has a NUL";
  }
  if (!v.empty() && v[0].empty()) return "starts with an empty program name";
  return "";
}

class YamlReader {
 public:
  explicit YamlReader(std::string source) : source_(std::move(source)) {}

  Status Error(const YAML::Node& n, const std::string& field, const std::string& msg) const {
    const auto m = n.Mark();
    return Status::Invalid(source_ + ":" + std::to_string(m.line + 1) + ":" +
                           std::to_string(m.column + 1) + ": " + field + ": " + msg);
  }
  Status Keys(const YAML::Node& map, const std::string& field, std::set<std::string> known) const {
    if (!map.IsMap()) return Error(map, field.empty() ? "app.yaml" : field, "must be a mapping");
    for (const auto& kv : map) {
      // A complex key ("? {a: b}: c") is no field name: refused, not converted.
      if (!kv.first.IsScalar()) {
        return Error(kv.first, field.empty() ? "app.yaml" : field, "keys must be plain names");
      }
      const std::string k = kv.first.Scalar();
      if (!known.count(k)) {
        std::string list;
        for (const auto& x : known) list += (list.empty() ? "" : ", ") + x;
        return Error(kv.first, field.empty() ? k : field + "." + k,
                     "unknown field (known: " + list + ")");
      }
    }
    return Status::Ok();
  }
  template <typename T>
  Status Scalar(const YAML::Node& n, const std::string& field, T* out) const {
    if (!n.IsScalar()) return Error(n, field, "must be a single value");
    try {
      *out = n.as<T>();
    } catch (const YAML::Exception&) {
      return Error(n, field, "has the wrong type ('" + Excerpt(n.Scalar()) + "')");
    }
    return Status::Ok();
  }
  Status Strings(const YAML::Node& n, const std::string& field,
                 std::vector<std::string>* out) const {
    if (!n.IsSequence()) return Error(n, field, "must be a list");
    for (const auto& e : n) {
      std::string s;
      if (Status st = Scalar(e, field, &s); !st.ok()) return st;
      out->push_back(std::move(s));
    }
    return Status::Ok();
  }
  Status Dur(const YAML::Node& n, const std::string& field, std::chrono::milliseconds* out) const {
    std::string s;
    if (Status st = Scalar(n, field, &s); !st.ok()) return st;
    auto d = ParseDuration(s);
    if (!d.ok() || d->count() <= 0) return Error(n, field, "must be a positive duration like 10s");
    *out = *d;
    return Status::Ok();
  }
  Status Probe(const YAML::Node& n, const std::string& field, app::Probe* p) const {
    if (Status s = Keys(n, field, {"http", "tcp", "exec"}); !s.ok()) return s;
    if (n.size() != 1) return Error(n, field, "needs exactly one of http, tcp, exec");
    if (auto h = n["http"]) {
      p->type = "http";
      if (Status s = Keys(h, field + ".http", {"listen", "path"}); !s.ok()) return s;
      if (!h["listen"]) return Error(h, field + ".http.listen", "is required");
      if (Status s = Scalar(h["listen"], field + ".http.listen", &p->listen); !s.ok()) return s;
      if (h["path"]) {
        if (Status s = Scalar(h["path"], field + ".http.path", &p->path); !s.ok()) return s;
        if (p->path.empty() || p->path[0] != '/' || p->path.size() > 1024) {
          return Error(h["path"], field + ".http.path", "must start with '/'");
        }
      }
    } else if (auto t = n["tcp"]) {
      p->type = "tcp";
      if (Status s = Keys(t, field + ".tcp", {"listen"}); !s.ok()) return s;
      if (!t["listen"]) return Error(t, field + ".tcp.listen", "is required");
      if (Status s = Scalar(t["listen"], field + ".tcp.listen", &p->listen); !s.ok()) return s;
    } else {
      p->type = "exec";
      if (Status s = Strings(n["exec"], field + ".exec", &p->command); !s.ok()) return s;
      if (auto e = CheckArgv(p->command, true); !e.empty())
        return Error(n["exec"], field + ".exec", e);
    }
    return Status::Ok();
  }

 private:
  std::string source_;
};

}  // namespace

std::string AppNameError(const std::string& name) { return CheckName(name); }
std::string AppVersionError(const std::string& version) { return CheckVersion(version); }

bool IsCanonicalPath(const std::string& path) {
  if (path.empty() || path.size() > 4096 || path[0] == '/' || path.back() == '/') return false;
  size_t at = 0;
  while (at <= path.size()) {
    size_t slash = path.find('/', at);
    if (slash == std::string::npos) slash = path.size();
    const std::string part = path.substr(at, slash - at);
    if (part.empty() || part == "." || part == ".." || part.size() > 255) return false;
    at = slash + 1;
  }
  return std::none_of(path.begin(), path.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

Result<AppSpec> ParseAppYaml(const std::string& text, const std::string& source) {
  auto loaded = LoadOneDocument(text, source, "app.yaml");
  if (!loaded.ok()) return loaded.status();
  const YAML::Node root = *loaded;
  if (!root || root.IsNull()) {
    return Status::Invalid(source +
                           ": is empty (name, version, sequence and command are required)");
  }
  if (Status s = CheckUniqueKeys(root, source); !s.ok()) return s;
  YamlReader r(source);
  if (Status s =
          r.Keys(root, "",
                 {"name", "version", "sequence", "command", "env", "probes", "restart",
                  "stop_timeout", "resources", "permissions", "data_format", "migrates_from"});
      !s.ok()) {
    return s;
  }
  AppSpec a;
  for (const char* required : {"name", "version", "sequence", "command"}) {
    if (!root[required]) return Status::Invalid(source + ": " + required + ": is required");
  }
  if (Status s = r.Scalar(root["name"], "name", &a.name); !s.ok()) return s;
  if (auto e = CheckName(a.name); !e.empty()) return r.Error(root["name"], "name", e);
  if (Status s = r.Scalar(root["version"], "version", &a.version); !s.ok()) return s;
  if (auto e = CheckVersion(a.version); !e.empty()) return r.Error(root["version"], "version", e);
  if (Status s = r.Scalar(root["sequence"], "sequence", &a.sequence); !s.ok()) return s;
  if (a.sequence == 0) return r.Error(root["sequence"], "sequence", "must be 1 or more");
  if (Status s = r.Strings(root["command"], "command", &a.command); !s.ok()) return s;
  if (auto e = CheckArgv(a.command, true); !e.empty())
    return r.Error(root["command"], "command", e);
  if (auto env = root["env"]) {
    if (!env.IsMap()) return r.Error(env, "env", "must be a mapping");
    for (const auto& kv : env) {
      const std::string k = kv.first.as<std::string>();
      if (!IsEnvName(k)) return r.Error(kv.first, "env." + k, "is not a portable variable name");
      if (Status s = r.Scalar(kv.second, "env." + k, &a.env[k]); !s.ok()) return s;
    }
  }
  if (auto p = root["probes"]) {
    if (Status s =
            r.Keys(p, "probes",
                   {"startup", "liveness", "start_grace", "startup_deadline", "interval_starting",
                    "interval_healthy", "timeout", "failure_threshold", "healthy_before_commit"});
        !s.ok()) {
      return s;
    }
    if (p["startup"]) {
      if (Status s = r.Probe(p["startup"], "probes.startup", &a.probes.startup); !s.ok()) return s;
    }
    if (p["liveness"]) {
      if (Status s = r.Probe(p["liveness"], "probes.liveness", &a.probes.liveness); !s.ok())
        return s;
    }
    const std::pair<const char*, std::chrono::milliseconds*> durations[] = {
        {"start_grace", &a.probes.start_grace},
        {"startup_deadline", &a.probes.startup_deadline},
        {"interval_starting", &a.probes.interval_starting},
        {"interval_healthy", &a.probes.interval_healthy},
        {"timeout", &a.probes.timeout},
        {"healthy_before_commit", &a.probes.healthy_before_commit}};
    for (const auto& [key, out] : durations) {
      if (p[key]) {
        if (Status s = r.Dur(p[key], std::string("probes.") + key, out); !s.ok()) return s;
      }
    }
    if (p["failure_threshold"]) {
      if (Status s = r.Scalar(p["failure_threshold"], "probes.failure_threshold",
                              &a.probes.failure_threshold);
          !s.ok()) {
        return s;
      }
      if (a.probes.failure_threshold < 1 || a.probes.failure_threshold > 100) {
        return r.Error(p["failure_threshold"], "probes.failure_threshold", "must be 1 to 100");
      }
    }
  }
  if (root["restart"]) {
    if (Status s = r.Scalar(root["restart"], "restart", &a.restart); !s.ok()) return s;
    if (auto e = CheckOneOf(a.restart, {"on-failure", "always", "never"}); !e.empty()) {
      return r.Error(root["restart"], "restart", e);
    }
  }
  if (root["stop_timeout"]) {
    if (Status s = r.Dur(root["stop_timeout"], "stop_timeout", &a.stop_timeout); !s.ok()) return s;
  }
  if (auto res = root["resources"]) {
    if (Status s = r.Keys(res, "resources", {"memory", "pids", "cpu_share"}); !s.ok()) return s;
    if (res["memory"]) {
      std::string m;
      if (Status s = r.Scalar(res["memory"], "resources.memory", &m); !s.ok()) return s;
      auto bytes = ParseByteSize(m);
      a.memory_bytes = bytes.ok() ? *bytes : 0;
      if (a.memory_bytes == 0) {
        return r.Error(res["memory"], "resources.memory", "must be a size like 256M or 1G");
      }
    }
    if (res["pids"]) {
      if (Status s = r.Scalar(res["pids"], "resources.pids", &a.pids); !s.ok()) return s;
    }
    if (res["cpu_share"]) {
      if (Status s = r.Scalar(res["cpu_share"], "resources.cpu_share", &a.cpu_share); !s.ok())
        return s;
    }
  }
  if (auto perm = root["permissions"]) {
    if (Status s = r.Keys(perm, "permissions", {"network", "listen"}); !s.ok()) return s;
    if (perm["network"]) {
      if (Status s = r.Scalar(perm["network"], "permissions.network", &a.network); !s.ok())
        return s;
      if (auto e = CheckOneOf(a.network, {"none", "outbound"}); !e.empty()) {
        return r.Error(perm["network"], "permissions.network", e);
      }
    }
    if (perm["listen"]) {
      if (Status s = r.Strings(perm["listen"], "permissions.listen", &a.listen); !s.ok()) return s;
      for (const auto& l : a.listen) {
        if (auto e = CheckName(l); !e.empty())
          return r.Error(perm["listen"], "permissions.listen", l + " " + e);
      }
    }
  }
  for (const app::Probe* p : {&a.probes.startup, &a.probes.liveness}) {
    if (!p->listen.empty() &&
        std::find(a.listen.begin(), a.listen.end(), p->listen) == a.listen.end()) {
      return r.Error(
          root["probes"], "probes",
          "probe uses listen '" + p->listen + "', which permissions.listen does not declare");
    }
  }
  if (root["data_format"]) {
    if (Status s = r.Scalar(root["data_format"], "data_format", &a.data_format); !s.ok()) return s;
    if (a.data_format == 0) return r.Error(root["data_format"], "data_format", "must be 1 or more");
  }
  if (auto mf = root["migrates_from"]) {
    if (!mf.IsSequence()) return r.Error(mf, "migrates_from", "must be a list of data formats");
    for (const auto& e : mf) {
      uint32_t v = 0;
      if (Status s = r.Scalar(e, "migrates_from", &v); !s.ok()) return s;
      a.migrates_from.push_back(v);
    }
  }
  return a;
}

namespace {

json ProbeJson(const Probe& p) {
  return {{"type", p.type}, {"listen", p.listen}, {"path", p.path}, {"command", p.command}};
}

Status JsonError(const std::string& source, const std::string& what) {
  return Status::Invalid(source + ": manifest: " + what);
}

}  // namespace

std::string CanonicalJson(const Manifest& m) {
  const AppSpec& a = m.app;
  json files = json::array();
  for (const auto& f : m.files) {
    files.push_back({{"path", f.path}, {"mode", f.mode}, {"size", f.size}, {"sha256", f.sha256}});
  }
  json probes = {{"startup", ProbeJson(a.probes.startup)},
                 {"liveness", ProbeJson(a.probes.liveness)},
                 {"start_grace_ms", a.probes.start_grace.count()},
                 {"startup_deadline_ms", a.probes.startup_deadline.count()},
                 {"interval_starting_ms", a.probes.interval_starting.count()},
                 {"interval_healthy_ms", a.probes.interval_healthy.count()},
                 {"timeout_ms", a.probes.timeout.count()},
                 {"failure_threshold", a.probes.failure_threshold},
                 {"healthy_before_commit_ms", a.probes.healthy_before_commit.count()}};
  json app = {{"name", a.name},
              {"version", a.version},
              {"sequence", a.sequence},
              {"command", a.command},
              {"env", a.env},
              {"probes", probes},
              {"restart", a.restart},
              {"stop_timeout_ms", a.stop_timeout.count()},
              {"memory_bytes", a.memory_bytes},
              {"pids", a.pids},
              {"cpu_share", a.cpu_share},
              {"network", a.network},
              {"listen", a.listen},
              {"data_format", a.data_format},
              {"migrates_from", a.migrates_from}};
  json j = {{"format", "herd-app-v1"},
            {"app", app},
            {"files", files},
            {"payload_sha256", m.payload_sha256},
            {"payload_size", m.payload_size},
            {"chunk_size", m.chunk_size},
            {"chunks", m.chunks}};
  return j.dump();
}

Result<Manifest> ParseManifest(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return JsonError(source, "not a JSON object");
  // Compared, not read as a string: a number there must not throw.
  if (!j.contains("format") || j["format"] != "herd-app-v1") {
    return JsonError(source, "unknown format");
  }
  Manifest m;
  try {
    const json& a = j.at("app");
    m.app.name = a.at("name").get<std::string>();
    m.app.version = a.at("version").get<std::string>();
    m.app.sequence = a.at("sequence").get<uint64_t>();
    m.app.command = a.at("command").get<std::vector<std::string>>();
    m.app.env = a.at("env").get<std::map<std::string, std::string>>();
    const json& p = a.at("probes");
    for (auto [key, out] : {std::pair<const char*, Probe*>{"startup", &m.app.probes.startup},
                            {"liveness", &m.app.probes.liveness}}) {
      const json& pj = p.at(key);
      out->type = pj.at("type").get<std::string>();
      out->listen = pj.at("listen").get<std::string>();
      out->path = pj.at("path").get<std::string>();
      out->command = pj.at("command").get<std::vector<std::string>>();
    }
    using ms = std::chrono::milliseconds;
    m.app.probes.start_grace = ms(p.at("start_grace_ms").get<int64_t>());
    m.app.probes.startup_deadline = ms(p.at("startup_deadline_ms").get<int64_t>());
    m.app.probes.interval_starting = ms(p.at("interval_starting_ms").get<int64_t>());
    m.app.probes.interval_healthy = ms(p.at("interval_healthy_ms").get<int64_t>());
    m.app.probes.timeout = ms(p.at("timeout_ms").get<int64_t>());
    m.app.probes.failure_threshold = p.at("failure_threshold").get<int>();
    m.app.probes.healthy_before_commit = ms(p.at("healthy_before_commit_ms").get<int64_t>());
    m.app.restart = a.at("restart").get<std::string>();
    m.app.stop_timeout = ms(a.at("stop_timeout_ms").get<int64_t>());
    m.app.memory_bytes = a.at("memory_bytes").get<uint64_t>();
    m.app.pids = a.at("pids").get<uint64_t>();
    m.app.cpu_share = a.at("cpu_share").get<uint32_t>();
    m.app.network = a.at("network").get<std::string>();
    m.app.listen = a.at("listen").get<std::vector<std::string>>();
    m.app.data_format = a.at("data_format").get<uint32_t>();
    m.app.migrates_from = a.at("migrates_from").get<std::vector<uint32_t>>();
    for (const auto& f : j.at("files")) {
      m.files.push_back({f.at("path").get<std::string>(), f.at("mode").get<uint32_t>(),
                         f.at("size").get<uint64_t>(), f.at("sha256").get<std::string>()});
    }
    m.payload_sha256 = j.at("payload_sha256").get<std::string>();
    m.payload_size = j.at("payload_size").get<uint64_t>();
    m.chunk_size = j.at("chunk_size").get<uint64_t>();
    m.chunks = j.at("chunks").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    return JsonError(source, e.what());
  }
  // What app.yaml would refuse, and files a bundle may not hold.
  for (const auto& e :
       {CheckName(m.app.name), CheckVersion(m.app.version), CheckArgv(m.app.command, true),
        CheckOneOf(m.app.network, {"none", "outbound"}),
        CheckOneOf(m.app.restart, {"on-failure", "always", "never"})}) {
    if (!e.empty()) return JsonError(source, e);
  }
  std::set<std::string> seen;
  for (const auto& f : m.files) {
    if (!IsCanonicalPath(f.path) || !seen.insert(f.path).second) {
      return JsonError(source, "file path '" + Excerpt(f.path) + "' is not canonical or repeats");
    }
    if ((f.mode & ~0777u) != 0) return JsonError(source, f.path + ": mode beyond 0777");
  }
  if (m.chunk_size == 0 || m.chunks.size() != (m.payload_size + m.chunk_size - 1) / m.chunk_size) {
    return JsonError(source, "chunk digests do not cover the payload");
  }
  // The canonical form is the only form: anything else was not made by herd.
  if (CanonicalJson(m) != text) return JsonError(source, "not in canonical form");
  return m;
}

}  // namespace herd::app
