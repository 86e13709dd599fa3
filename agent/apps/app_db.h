// AppDb: what herdd must remember about its apps across a crash, in one
// SQLite file (<apps dir>/state.db; WAL, synchronous=FULL: a committed
// write survives a power cut). docs/apps.md has the state machine.
//
//   apps         per app: the current and previous version (sequences),
//                the data format the data is in (written only when an
//                activation commits), whether it should run, and the
//                process that runs it (pid and start time, to take it
//                over after a restart of herdd)
//   activations  each activation or rollback: from, to, the step reached
//                (persisted before the step is taken), the snapshot used,
//                and once ended its outcome and reason code
//   catalog_seen per catalogue key (the whole key): the highest index sequence seen and
//                its digest (no rollback of a catalogue's index)
//
// Thread-safe: one connection behind a mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace herd::agent {

struct CatalogSeen {
  uint64_t sequence = 0;
  std::string sha256;  // of the index's text
};

struct AppRecord {
  std::string name;
  uint64_t current = 0, previous = 0;  // sequences; 0: none
  uint32_t data_format = 0;            // 0: no activation committed yet
  bool enabled = false;                // should run
  // The process: bwrap's pid, its start time (clock ticks since boot, from
  // /proc/PID/stat) and the app's own pid (pid 1 of its namespace).
  int64_t pid = 0, pid_start = 0, child_pid = 0;
  uint64_t running = 0;  // the sequence the process runs
  int64_t started_unix = 0;
};

struct ActivationRecord {
  int64_t id = 0;
  std::string app, kind;  // kind: activate | rollback
  uint64_t from = 0, to = 0;
  std::string step;      // verified, snapshot, stop-old, start-new, probe, commit; revert steps
  std::string snapshot;  // reflink | copy | none | "" (not yet)
  std::string outcome;   // "" while running; committed | rolled-back | failed
  std::string reason;    // a short code: startup-deadline, exited-1, interrupted, ...
  int64_t started_unix = 0, ended_unix = 0;
  bool restore_data = false;  // rollback: data from the snapshot
  std::string rollout;        // the rollout it was a step of ("" for none)
};

class AppDb {
 public:
  // Opens (creating) the database at `path`.
  static Result<std::unique_ptr<AppDb>> Open(const std::string& path);
  ~AppDb();

  std::optional<AppRecord> App(const std::string& name);

  // Takes a catalogue index as the newest seen from `key` (the whole
  // public key, base64: key ids can be chosen by anyone), in one
  // transaction: kPermissionDenied naming both sequences for an older one,
  // or for another index with the same sequence (common/app/catalog.h).
  Status AdvanceSeenIndex(const std::string& key, const CatalogSeen& seen);
  std::vector<AppRecord> Apps();
  Status DeleteApp(const std::string& name);
  // The process fields of `a` alone (the rest as stored; a new app's zero).
  Status SetProcess(const AppRecord& a);

  // A new activation (outcome ""), its id in `a->id`.
  Status Begin(ActivationRecord* a);
  Status SetStep(int64_t id, const std::string& step);
  Status SetSnapshot(int64_t id, const std::string& snapshot);
  // Ends activation `a` and, in the same transaction, stores the versions
  // of `app` (current, previous, data format, enabled; not its process).
  Status End(const ActivationRecord& a, const AppRecord& app);
  // Activations without an outcome (a herdd killed during them).
  std::vector<ActivationRecord> Unfinished();
  // The most recent committed activation of `app` to `to`.
  std::optional<ActivationRecord> CommittedTo(const std::string& app, uint64_t to);
  // The app's most recent activation.
  std::optional<ActivationRecord> Last(const std::string& app);

 private:
  explicit AppDb(sqlite3* db) : db_(db) {}
  Status Exec(const std::string& sql);
  std::vector<ActivationRecord> Activations(const std::string& where, const std::string& arg);
  std::vector<AppRecord> AppsWhere(const std::string& where, const std::string& arg);
  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace herd::agent
