#include "agent/apps/app_db.h"

#include <ctime>
#include <memory>

namespace herd::agent {
namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS apps (
  name TEXT PRIMARY KEY, current INTEGER NOT NULL, previous INTEGER NOT NULL,
  data_format INTEGER NOT NULL, enabled INTEGER NOT NULL, pid INTEGER NOT NULL,
  pid_start INTEGER NOT NULL, child_pid INTEGER NOT NULL, running INTEGER NOT NULL,
  started_unix INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS activations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, kind TEXT NOT NULL,
  from_seq INTEGER NOT NULL, to_seq INTEGER NOT NULL, step TEXT NOT NULL,
  snapshot TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL,
  started_unix INTEGER NOT NULL, ended_unix INTEGER NOT NULL, restore_data INTEGER NOT NULL,
  rollout TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS activations_app ON activations(app, id);
CREATE TABLE IF NOT EXISTS catalog_seen (
  key_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, sha256 TEXT NOT NULL,
  seen_unix INTEGER NOT NULL);
)";

// A prepared statement, finalised on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) s_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return s_ != nullptr; }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int Step() { return s_ ? sqlite3_step(s_) : SQLITE_ERROR; }
  int64_t Int(int col) const { return sqlite3_column_int64(s_, col); }
  std::string Text(int col) const {
    const auto* t = sqlite3_column_text(s_, col);
    return t ? std::string(reinterpret_cast<const char*>(t),
                           static_cast<size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

Status DbError(sqlite3* db, const std::string& what) {
  return Status::Internal("apps state database: " + what + ": " + sqlite3_errmsg(db));
}

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

Result<std::unique_ptr<AppDb>> AppDb::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    Status s = DbError(db, "cannot open " + path);
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<AppDb> out(new AppDb(db));
  sqlite3_busy_timeout(db, 5'000);
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", kSchema}) {
    if (Status s = out->Exec(sql); !s.ok()) return s;
  }
  // A database from before activations recorded their rollout gains the
  // column (SQLite adds it in place; old rows read "").
  bool has_rollout = false;
  {
    Stmt q(db, "SELECT 1 FROM pragma_table_info('activations') WHERE name = 'rollout'");
    has_rollout = q.Step() == SQLITE_ROW;
  }
  if (!has_rollout) {
    if (Status s = out->Exec("ALTER TABLE activations ADD COLUMN rollout TEXT NOT NULL DEFAULT ''");
        !s.ok()) {
      return s;
    }
  }
  return out;
}

AppDb::~AppDb() { sqlite3_close(db_); }

Status AppDb::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = Status::Internal("apps state database: " + std::string(err ? err : "error"));
    sqlite3_free(err);
    return s;
  }
  return Status::Ok();
}

std::vector<AppRecord> AppDb::AppsWhere(const std::string& where, const std::string& arg) {
  std::vector<AppRecord> out;
  Stmt q(db_,
         "SELECT name, current, previous, data_format, enabled, pid, pid_start, child_pid, "
         "running, started_unix FROM apps " +
             where + " ORDER BY name");
  if (!arg.empty()) q.Bind(1, arg);
  while (q.Step() == SQLITE_ROW) {
    AppRecord a;
    a.name = q.Text(0);
    a.current = static_cast<uint64_t>(q.Int(1));
    a.previous = static_cast<uint64_t>(q.Int(2));
    a.data_format = static_cast<uint32_t>(q.Int(3));
    a.enabled = q.Int(4) != 0;
    a.pid = q.Int(5);
    a.pid_start = q.Int(6);
    a.child_pid = q.Int(7);
    a.running = static_cast<uint64_t>(q.Int(8));
    a.started_unix = q.Int(9);
    out.push_back(std::move(a));
  }
  return out;
}

Status AppDb::AdvanceSeenIndex(const std::string& key, const CatalogSeen& seen) {
  std::lock_guard<std::mutex> l(mu_);
  {
    Stmt q(db_, "SELECT sequence, sha256 FROM catalog_seen WHERE key_id = ?1");
    q.Bind(1, key);
    if (q.Step() == SQLITE_ROW) {
      const auto had = static_cast<uint64_t>(q.Int(0));
      if (seen.sequence < had) {
        return Status(StatusCode::kPermissionDenied,
                      "index sequence " + std::to_string(seen.sequence) +
                          " is older than sequence " + std::to_string(had) +
                          " this device has seen from the catalogue key: refused (an index "
                          "rollback)");
      }
      if (seen.sequence == had && seen.sha256 != q.Text(1)) {
        return Status(StatusCode::kPermissionDenied,
                      "another index with sequence " + std::to_string(had) +
                          " was seen from the catalogue key: refused (two indexes with one "
                          "sequence)");
      }
      if (seen.sequence == had) return Status::Ok();
    }
  }
  Stmt q(db_,
         "INSERT INTO catalog_seen (key_id, sequence, sha256, seen_unix) VALUES (?1, ?2, ?3, ?4) "
         "ON CONFLICT(key_id) DO UPDATE SET sequence = ?2, sha256 = ?3, seen_unix = ?4");
  q.Bind(1, key).Bind(2, static_cast<int64_t>(seen.sequence)).Bind(3, seen.sha256).Bind(4, Now());
  if (q.Step() != SQLITE_DONE) return DbError(db_, "cannot store the catalogue index seen");
  return Status::Ok();
}

std::optional<AppRecord> AppDb::App(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto v = AppsWhere("WHERE name = ?1", name);
  if (v.empty()) return std::nullopt;
  return v.front();
}

std::vector<AppRecord> AppDb::Apps() {
  std::lock_guard<std::mutex> l(mu_);
  return AppsWhere("", "");
}

Status AppDb::SetProcess(const AppRecord& a) {
  std::lock_guard<std::mutex> l(mu_);
  Stmt q(db_,
         "INSERT INTO apps (name, current, previous, data_format, enabled, pid, pid_start, "
         "child_pid, running, started_unix) VALUES (?1, 0, 0, 0, 0, ?2, ?3, ?4, ?5, ?6) ON "
         "CONFLICT(name) DO UPDATE SET pid = ?2, pid_start = ?3, child_pid = ?4, running = ?5, "
         "started_unix = ?6");
  q.Bind(1, a.name)
      .Bind(2, a.pid)
      .Bind(3, a.pid_start)
      .Bind(4, a.child_pid)
      .Bind(5, static_cast<int64_t>(a.running))
      .Bind(6, a.started_unix);
  if (q.Step() != SQLITE_DONE) return DbError(db_, "cannot store the process of " + a.name);
  return Status::Ok();
}

Status AppDb::DeleteApp(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  Stmt q(db_, "DELETE FROM apps WHERE name = ?1");
  q.Bind(1, name);
  if (q.Step() != SQLITE_DONE) return DbError(db_, "cannot remove app " + name);
  return Status::Ok();
}

Status AppDb::Begin(ActivationRecord* a) {
  std::lock_guard<std::mutex> l(mu_);
  a->started_unix = Now();
  Stmt q(db_,
         "INSERT INTO activations (app, kind, from_seq, to_seq, step, snapshot, outcome, reason, "
         "started_unix, ended_unix, restore_data, rollout) VALUES (?1, ?2, ?3, ?4, ?5, '', '', '', "
         "?6, 0, ?7, ?8)");
  q.Bind(1, a->app)
      .Bind(2, a->kind)
      .Bind(3, static_cast<int64_t>(a->from))
      .Bind(4, static_cast<int64_t>(a->to))
      .Bind(5, a->step)
      .Bind(6, a->started_unix)
      .Bind(7, a->restore_data ? 1 : 0)
      .Bind(8, a->rollout);
  if (q.Step() != SQLITE_DONE) return DbError(db_, "cannot record an activation of " + a->app);
  a->id = sqlite3_last_insert_rowid(db_);
  return Status::Ok();
}

Status AppDb::SetStep(int64_t id, const std::string& step) {
  std::lock_guard<std::mutex> l(mu_);
  Stmt q(db_, "UPDATE activations SET step = ?1 WHERE id = ?2");
  q.Bind(1, step).Bind(2, id);
  if (q.Step() != SQLITE_DONE) return DbError(db_, "cannot record step " + step);
  return Status::Ok();
}

Status AppDb::SetSnapshot(int64_t id, const std::string& snapshot) {
  std::lock_guard<std::mutex> l(mu_);
  Stmt q(db_, "UPDATE activations SET snapshot = ?1 WHERE id = ?2");
  q.Bind(1, snapshot).Bind(2, id);
  if (q.Step() != SQLITE_DONE) return DbError(db_, "cannot record the snapshot");
  return Status::Ok();
}

Status AppDb::End(const ActivationRecord& a, const AppRecord& app) {
  std::lock_guard<std::mutex> l(mu_);
  if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Stmt q(db_,
         "UPDATE activations SET step = ?1, outcome = ?2, reason = ?3, ended_unix = ?4 WHERE id = "
         "?5");
  q.Bind(1, a.step).Bind(2, a.outcome).Bind(3, a.reason).Bind(4, Now()).Bind(5, a.id);
  // The app's versions only: its process is the supervisor's to record.
  Stmt v(
      db_,
      "INSERT INTO apps (name, current, previous, data_format, enabled, pid, pid_start, "
      "child_pid, running, started_unix) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, 0, 0) ON "
      "CONFLICT(name) DO UPDATE SET current = ?2, previous = ?3, data_format = ?4, enabled = ?5");
  v.Bind(1, app.name)
      .Bind(2, static_cast<int64_t>(app.current))
      .Bind(3, static_cast<int64_t>(app.previous))
      .Bind(4, static_cast<int64_t>(app.data_format))
      .Bind(5, app.enabled ? 1 : 0);
  Status s = q.Step() == SQLITE_DONE && v.Step() == SQLITE_DONE
                 ? Status::Ok()
                 : DbError(db_, "cannot end activation");
  if (!s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  return Exec("COMMIT");
}

std::vector<ActivationRecord> AppDb::Activations(const std::string& where, const std::string& arg) {
  std::vector<ActivationRecord> out;
  Stmt q(db_,
         "SELECT id, app, kind, from_seq, to_seq, step, snapshot, outcome, reason, started_unix, "
         "ended_unix, restore_data, rollout FROM activations " +
             where);
  if (!arg.empty()) q.Bind(1, arg);
  while (q.Step() == SQLITE_ROW) {
    ActivationRecord a;
    a.id = q.Int(0);
    a.app = q.Text(1);
    a.kind = q.Text(2);
    a.from = static_cast<uint64_t>(q.Int(3));
    a.to = static_cast<uint64_t>(q.Int(4));
    a.step = q.Text(5);
    a.snapshot = q.Text(6);
    a.outcome = q.Text(7);
    a.reason = q.Text(8);
    a.started_unix = q.Int(9);
    a.ended_unix = q.Int(10);
    a.restore_data = q.Int(11) != 0;
    a.rollout = q.Text(12);
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<ActivationRecord> AppDb::Unfinished() {
  std::lock_guard<std::mutex> l(mu_);
  return Activations("WHERE outcome = '' ORDER BY id", "");
}

std::optional<ActivationRecord> AppDb::CommittedTo(const std::string& app, uint64_t to) {
  std::lock_guard<std::mutex> l(mu_);
  auto v =
      Activations("WHERE app = ?1 AND outcome = 'committed' AND to_seq = " + std::to_string(to) +
                      " ORDER BY id DESC LIMIT 1",
                  app);
  if (v.empty()) return std::nullopt;
  return v.front();
}

std::optional<ActivationRecord> AppDb::Last(const std::string& app) {
  std::lock_guard<std::mutex> l(mu_);
  auto v = Activations("WHERE app = ?1 ORDER BY id DESC LIMIT 1", app);
  if (v.empty()) return std::nullopt;
  return v.front();
}

}  // namespace herd::agent
