#include "agent/config.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/app/catalog.h"
#include "common/duration.h"
#include "common/file.h"
#include "common/text.h"
#include "common/yaml_check.h"

namespace herd::agent {
namespace {

Status At(const std::string& source, const YAML::Mark& m, const std::string& msg) {
  return YamlError(source, m, msg);
}

Status CheckKeys(const std::string& source, const YAML::Node& node,
                 const std::set<std::string>& known, const std::string& where) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar())
      return At(source, it->first.Mark(), "keys must be plain names" + where);
    auto key = it->first.Scalar();
    if (!known.count(key)) return At(source, it->first.Mark(), "unknown key '" + key + "'" + where);
  }
  return Status::Ok();
}

Status Duration(const std::string& source, const YAML::Node& n, std::chrono::milliseconds* out) {
  if (!n) return Status::Ok();
  auto d = ParseDuration(n.as<std::string>());
  if (!d.ok()) return At(source, n.Mark(), d.status().message());
  *out = *d;
  return Status::Ok();
}

// A publisher's or catalogue's key: a minisign .pub file (absolute path) or
// its base64 line. `field` names it in errors.
Result<app::PublicKey> PublicKeyAt(const std::string& source, const YAML::Node& n,
                                   const std::string& field) {
  const std::string v = n.as<std::string>();
  if (!v.empty() && v[0] == '/') {
    auto text = ReadFileToString(v, 4096);
    if (!text.ok()) return At(source, n.Mark(), field + ": " + text.status().message());
    auto k = app::ParsePublicKey(*text, v);
    if (!k.ok()) return At(source, n.Mark(), field + ": " + k.status().message());
    return *k;
  }
  auto k = app::ParsePublicKey("untrusted comment: " + field + "\n" + v + "\n", "key");
  if (!k.ok()) {
    return At(source, n.Mark(),
              field + ": '" + Excerpt(v) +
                  "' is neither an absolute path to a .pub file nor a minisign public key");
  }
  return *k;
}

// apps.catalogs: the catalogues this device installs from by name.
Status Catalogs(const std::string& source, const YAML::Node& list, AppsSettings* out) {
  if (!list.IsSequence()) {
    return At(source, list.Mark(), "apps.catalogs must be a list of {url, key, channels}");
  }
  for (const auto& n : list) {
    Status s = CheckKeys(source, n, {"url", "key", "channels"}, " in an apps.catalogs entry");
    if (!s.ok()) return s;
    if (!n["url"] || !n["key"]) {
      return At(source, n.Mark(), "an apps.catalogs entry needs url and key");
    }
    CatalogSource c;
    c.url = n["url"].as<std::string>();
    const bool scheme = c.url.rfind("http://", 0) == 0 || c.url.rfind("https://", 0) == 0;
    const bool clean = std::all_of(c.url.begin(), c.url.end(), [](char ch) {
      return std::isgraph(static_cast<unsigned char>(ch));
    });
    if (!scheme || !clean || c.url.size() > 1024) {
      return At(source, n["url"].Mark(),
                "apps.catalogs url '" + Excerpt(c.url) +
                    "' must be an http:// or https:// URL without spaces, at most 1024 bytes");
    }
    if (c.url.back() != '/') c.url += '/';
    auto k = PublicKeyAt(source, n["key"], "apps.catalogs key");
    if (!k.ok()) return k.status();
    c.key = *k;
    if (auto ch = n["channels"]) {
      if (!ch.IsSequence() || ch.size() == 0) {
        return At(source, ch.Mark(), "apps.catalogs channels must be a list of channel names");
      }
      c.channels.clear();
      for (const auto& name : ch) {
        const std::string v = name.as<std::string>();
        if (std::string e = app::ChannelError(v); !e.empty()) {
          return At(source, name.Mark(), "apps.catalogs channel '" + Excerpt(v) + "' " + e);
        }
        c.channels.push_back(v);
      }
    }
    out->catalogs.push_back(std::move(c));
  }
  return Status::Ok();
}

Status Size(const std::string& source, const YAML::Node& n, uint64_t* out) {
  if (!n) return Status::Ok();
  auto v = ParseByteSize(n.as<std::string>());
  if (!v.ok() || *v == 0) return At(source, n.Mark(), "must be a size like 64M or 1G");
  *out = *v;
  return Status::Ok();
}

Status Apps(const std::string& source, const YAML::Node& a, AppsSettings* out) {
  Status s =
      CheckKeys(source, a,
                {"dir", "publishers", "max_bundle_size", "max_entries", "max_expanded_size",
                 "keep_versions", "allow_outbound", "max_memory", "max_pids", "uid_base",
                 "uid_count", "port_base", "port_count", "listen_address", "max_snapshot_copy",
                 "max_log_size", "restart_backoff", "restart_backoff_max", "catalogs"},
                " in 'apps'");
  if (!s.ok()) return s;
  if (a["dir"]) out->dir = a["dir"].as<std::string>();
  if (auto p = a["publishers"]) {
    if (!p.IsSequence()) return At(source, p.Mark(), "apps.publishers must be a list of keys");
    for (const auto& n : p) {
      auto k = PublicKeyAt(source, n, "apps.publishers");
      if (!k.ok()) return k.status();
      out->publishers.push_back(*k);
    }
  }
  if (a["catalogs"] && !(s = Catalogs(source, a["catalogs"], out)).ok()) return s;
  if (!(s = Size(source, a["max_bundle_size"], &out->max_bundle_bytes)).ok()) return s;
  if (!(s = Size(source, a["max_expanded_size"], &out->max_expanded_bytes)).ok()) return s;
  if (!(s = Size(source, a["max_memory"], &out->max_memory)).ok()) return s;
  if (!(s = Size(source, a["max_snapshot_copy"], &out->max_snapshot_copy)).ok()) return s;
  if (!(s = Size(source, a["max_log_size"], &out->max_log_bytes)).ok()) return s;
  if (!(s = Duration(source, a["restart_backoff"], &out->restart_backoff)).ok()) return s;
  if (!(s = Duration(source, a["restart_backoff_max"], &out->restart_backoff_max)).ok()) return s;
  if (out->restart_backoff > out->restart_backoff_max) {
    return At(source, a["restart_backoff"].Mark(),
              "apps.restart_backoff must not be longer than restart_backoff_max");
  }
  if (a["port_base"]) out->port_base = a["port_base"].as<uint32_t>();
  if (a["port_count"]) out->port_count = a["port_count"].as<uint32_t>();
  if (out->port_base < 1 || out->port_count < 1 ||
      out->port_base + uint64_t{out->port_count} > 65536) {
    return At(source, a["port_base"] ? a["port_base"].Mark() : a.Mark(),
              "apps.port_base and port_count must name ports within 1 to 65535");
  }
  if (a["listen_address"]) {
    out->listen_address = a["listen_address"].as<std::string>();
    in_addr addr{};
    if (::inet_pton(AF_INET, out->listen_address.c_str(), &addr) != 1) {
      return At(source, a["listen_address"].Mark(),
                "apps.listen_address must be an IPv4 address like 127.0.0.1 or 0.0.0.0");
    }
  }
  if (a["max_entries"]) out->max_entries = a["max_entries"].as<uint64_t>();
  if (a["max_pids"]) out->max_pids = a["max_pids"].as<uint64_t>();
  if (a["allow_outbound"]) out->allow_outbound = a["allow_outbound"].as<bool>();
  if (a["keep_versions"]) out->keep_versions = a["keep_versions"].as<int>();
  if (a["uid_base"]) out->uid_base = a["uid_base"].as<uint32_t>();
  if (a["uid_count"]) out->uid_count = a["uid_count"].as<uint32_t>();
  if (out->uid_base < 1000 || out->uid_count < 1 ||
      out->uid_base + uint64_t{out->uid_count} > 65'000'000) {
    return At(source, a["uid_base"] ? a["uid_base"].Mark() : a.Mark(),
              "apps.uid_base must be 1000 or more, with uid_count >= 1 ids after it");
  }
  if (out->keep_versions < 1 || out->keep_versions > 100) {
    return At(source, a["keep_versions"].Mark(), "apps.keep_versions must be 1 to 100");
  }
  if (out->max_entries < 1) {
    return At(source, a["max_entries"].Mark(), "apps.max_entries must be 1 or more");
  }
  if (!out->dir.empty() && out->dir[0] != '/') {
    return At(source, a["dir"].Mark(), "apps.dir must be an absolute path");
  }
  return Status::Ok();
}

}  // namespace

Result<AgentConfig> ParseAgentConfig(const std::string& text, const std::string& source) {
  AgentConfig c;
  try {
    auto loaded = LoadOneDocument(text, source, "an agent config");
    if (!loaded.ok()) return loaded.status();
    const YAML::Node root = *loaded;
    if (!root || root.IsNull()) return c;
    if (!root.IsMap()) return At(source, root.Mark(), "agent config must be a mapping");
    if (Status s = CheckUniqueKeys(root, source); !s.ok()) return s;
    Status s =
        CheckKeys(source, root,
                  {"name", "listen", "metrics_listen", "state_dir", "labels", "log", "exec",
                   "files", "apps", "grpc", "health", "ready_file", "tls", "plaintext", "enroll"},
                  "");
    if (!s.ok()) return s;
    if (root["name"]) c.name = root["name"].as<std::string>();
    if (root["listen"]) c.listen = root["listen"].as<std::string>();
    if (root["metrics_listen"]) c.metrics_listen = root["metrics_listen"].as<std::string>();
    if (root["state_dir"]) c.state_dir = root["state_dir"].as<std::string>();
    if (root["ready_file"]) c.ready_file = root["ready_file"].as<std::string>();
    if (auto labels = root["labels"]) {
      if (!labels.IsMap()) return At(source, labels.Mark(), "'labels' must be a map");
      for (auto it = labels.begin(); it != labels.end(); ++it) {
        c.labels[it->first.as<std::string>()] = it->second.as<std::string>();
      }
    }
    if (auto log = root["log"]) {
      s = CheckKeys(source, log, {"format", "level"}, " in 'log'");
      if (!s.ok()) return s;
      if (log["format"]) c.log_format = log["format"].as<std::string>();
      if (log["level"]) c.log_level = log["level"].as<std::string>();
      if (c.log_format != "text" && c.log_format != "json") {
        return At(source, log["format"].Mark(), "log.format must be 'text' or 'json'");
      }
    }
    if (auto exec = root["exec"]) {
      s = CheckKeys(source, exec,
                    {"default_timeout", "kill_grace", "max_output_bytes", "max_concurrent",
                     "run_as", "allow_root"},
                    " in 'exec'");
      if (!s.ok()) return s;
      if (!(s = Duration(source, exec["default_timeout"], &c.exec.default_timeout)).ok()) return s;
      if (!(s = Duration(source, exec["kill_grace"], &c.exec.kill_grace)).ok()) return s;
      if (exec["max_output_bytes"])
        c.exec.max_output_bytes = exec["max_output_bytes"].as<uint64_t>();
      if (exec["max_concurrent"]) c.exec.max_concurrent = exec["max_concurrent"].as<int>();
      if (exec["run_as"]) c.exec.run_as = exec["run_as"].as<std::string>();
      if (exec["allow_root"]) c.exec.allow_root = exec["allow_root"].as<bool>();
      if (c.exec.run_as.empty()) {
        return At(source, exec["run_as"].Mark(), "exec.run_as must name an account");
      }
      if (c.exec.max_concurrent < 1) {
        return At(source, exec["max_concurrent"].Mark(), "exec.max_concurrent must be >= 1");
      }
    }
    if (auto files = root["files"]) {
      s = CheckKeys(source, files, {"max_concurrent"}, " in 'files'");
      if (!s.ok()) return s;
      if (files["max_concurrent"]) c.files.max_concurrent = files["max_concurrent"].as<int>();
      if (c.files.max_concurrent < 1) {
        return At(source, files["max_concurrent"].Mark(), "files.max_concurrent must be >= 1");
      }
    }
    if (auto a = root["apps"]) {
      s = Apps(source, a, &c.apps);
      if (!s.ok()) return s;
    }
    if (auto g = root["grpc"]) {
      s = CheckKeys(source, g, {"keepalive", "keepalive_timeout"}, " in 'grpc'");
      if (!s.ok()) return s;
      if (!(s = Duration(source, g["keepalive"], &c.grpc.keepalive)).ok()) return s;
      if (!(s = Duration(source, g["keepalive_timeout"], &c.grpc.keepalive_timeout)).ok()) {
        return s;
      }
    }
    if (auto t = root["tls"]) {
      s = CheckKeys(source, t, {"ca", "cert", "key", "dir", "reload_interval"}, " in 'tls'");
      if (!s.ok()) return s;
      if (!(s = Duration(source, t["reload_interval"], &c.tls_reload)).ok()) return s;
      if (t["dir"]) {
        const std::string d = t["dir"].as<std::string>();
        c.tls = TlsFilesIn(d);
      }
      if (t["ca"]) c.tls.ca = t["ca"].as<std::string>();
      if (t["cert"]) c.tls.cert = t["cert"].as<std::string>();
      if (t["key"]) c.tls.key = t["key"].as<std::string>();
    }
    if (auto e = root["enroll"]) {
      s = CheckKeys(source, e, {"token", "token_file"}, " in 'enroll'");
      if (!s.ok()) return s;
      if (e["token"]) {
        c.enroll.token = e["token"].as<std::string>();
        if (c.enroll.token.size() < 16) {
          return At(source, e["token"].Mark(),
                    "enroll.token must have at least 16 characters (leave it unset and herdd "
                    "makes a strong one)");
        }
      }
      if (e["token_file"]) c.enroll.token_file = e["token_file"].as<std::string>();
    }
    if (root["plaintext"]) c.plaintext = root["plaintext"].as<bool>();
    if (auto h = root["health"]) {
      s = CheckKeys(source, h,
                    {"min_disk_free_percent", "min_memory_available_percent", "max_load_per_cpu"},
                    " in 'health'");
      if (!s.ok()) return s;
      if (h["min_disk_free_percent"]) {
        c.health.min_disk_free_percent = h["min_disk_free_percent"].as<double>();
      }
      if (h["min_memory_available_percent"]) {
        c.health.min_memory_available_percent = h["min_memory_available_percent"].as<double>();
      }
      if (h["max_load_per_cpu"]) c.health.max_load_per_cpu = h["max_load_per_cpu"].as<double>();
    }
  } catch (const YAML::Exception& e) {
    // yaml-cpp says "bad conversion" for a value of the wrong type.
    std::string msg =
        e.msg == "bad conversion" ? "value has the wrong type (see configs/agent.yaml)" : e.msg;
    return At(source, e.mark, msg);
  }
  return c;
}

namespace {

Status CheckListen(const std::string& source, const char* key, const std::string& addr,
                   bool allow_empty) {
  if (addr.empty() && allow_empty) return Status::Ok();
  const size_t colon = addr.rfind(':');
  const std::string port = colon == std::string::npos ? "" : addr.substr(colon + 1);
  if (colon == std::string::npos || colon == 0 || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return Status::Invalid(source + ": " + key + " '" + addr +
                           "' must be host:port with a port 0-65535 (0 picks one)");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateAgentConfig(const AgentConfig& c, const std::string& source) {
  if (Status s = CheckListen(source, "listen", c.listen, false); !s.ok()) return s;
  if (Status s = CheckListen(source, "metrics_listen", c.metrics_listen, true); !s.ok()) return s;
  if (c.state_dir.empty()) return Status::Invalid(source + ": state_dir must not be empty");
  if (c.exec.default_timeout.count() <= 0 || c.exec.kill_grace.count() <= 0) {
    return Status::Invalid(source + ": exec.default_timeout and exec.kill_grace must be positive");
  }
  if (c.exec.max_output_bytes < 1 || c.exec.max_output_bytes > c.exec.max_output_bytes_limit) {
    return Status::Invalid(source + ": exec.max_output_bytes must be 1 to " +
                           std::to_string(c.exec.max_output_bytes_limit));
  }
  if (c.tls_reload < std::chrono::seconds(1) || c.tls_reload > std::chrono::hours(24)) {
    return Status::Invalid(source + ": tls.reload_interval must be between 1s and 24h");
  }
  if (c.grpc.keepalive < std::chrono::seconds(1) ||
      c.grpc.keepalive_timeout < std::chrono::seconds(1)) {
    return Status::Invalid(source +
                           ": grpc.keepalive and grpc.keepalive_timeout must be at least 1s");
  }
  if (!c.tls.empty() && !c.tls.complete()) {
    return Status::Invalid(source + ": tls needs all of ca, cert and key (or dir)");
  }
  for (double pct : {c.health.min_disk_free_percent, c.health.min_memory_available_percent}) {
    if (pct < 0 || pct > 100) {
      return Status::Invalid(source + ": health percentages must be between 0 and 100");
    }
  }
  return Status::Ok();
}

bool IsLoopbackAddress(const std::string& host_port) {
  std::string host = host_port.substr(0, host_port.rfind(':'));
  if (host == "localhost" || host == "[::1]") return true;
  return host.rfind("127.", 0) == 0 && host.find_first_not_of("0123456789.") == std::string::npos;
}

Result<AgentConfig> LoadAgentConfig(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return Status(text.status().code(), "config: " + text.status().message());
  return ParseAgentConfig(*text, path);
}

}  // namespace herd::agent
