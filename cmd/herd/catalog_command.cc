// herd catalog init | add | list | show | serve: a catalogue of signed apps
// (docs/catalog.md), made and served on the publisher's machine.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "cmd/herd/cli.h"
#include "control/catalog.h"
#include "control/catalog_server.h"

namespace herd::cli {
namespace {

class Catalog final : public CommandGroup {
 public:
  explicit Catalog(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    cat_ = app.add_subcommand(
        "catalog", "Make and serve a catalogue of signed apps that devices install from by name");
    cat_->require_subcommand(1);
    init_ = cat_->add_subcommand("init", "Make DIR a catalogue: an empty signed index");
    init_->add_option("dir", dir_, "The catalogue folder (what a web server serves)")->required();
    init_->add_option("--key", key_,
                      "The catalogue's secret key: used if it exists, else made (default "
                      "DIR.key, beside the folder: never serve it)");
    add_ = cat_->add_subcommand("add",
                                "Add a signed bundle to the catalogue (or move a version "
                                "to another channel)");
    add_->add_option("dir", dir_, "The catalogue folder")->required();
    add_->add_option("bundle", add_spec_.bundle, "The .herd file, signed")->required();
    add_->add_option("--key", key_, "The catalogue's secret key (default DIR.key)");
    add_->add_option("--channel", add_spec_.channel, "stable (default), beta, or any a-z0-9-");
    add_->add_option("--publisher", add_spec_.publishers,
                     "A public key allowed to sign this app (needed for its first version; "
                     "repeatable)");
    add_->add_flag("--min", add_spec_.min,
                   "Make this version the app's minimum: older ones are no longer offered");
    list_ = cat_->add_subcommand("list", "The catalogue's apps (its index, verified)");
    list_->add_option("dir", dir_, "The catalogue folder")->required();
    show_ = cat_->add_subcommand("show", "One app's versions, channels and digests");
    show_->add_option("dir", dir_, "The catalogue folder")->required();
    show_->add_option("name", name_, "The app")->required();
    serve_ = cat_->add_subcommand(
        "serve", "Serve the catalogue over HTTP (for a local fleet), with /metrics, until Ctrl-C");
    serve_->add_option("dir", dir_, "The catalogue folder")->required();
    serve_->add_option("--listen", listen_, "HOST:PORT (default 127.0.0.1:8700; port 0 picks one)");
    serve_->add_option("--threads", threads_, "Requests served at once (default 32)")
        ->check(CLI::Range(1, 512));
    cat_->footer(
        "Example:\n  herd catalog init ./catalog\n"
        "  herd catalog add ./catalog notes-1.0.herd --publisher acme.pub\n"
        "  herd catalog add ./catalog notes-1.1.herd --channel beta\n"
        "  herd catalog list ./catalog\n  herd catalog serve ./catalog --listen 127.0.0.1:8700\n"
        "  herd app install all notes@1.0\n\n"
        "Devices trust a catalogue by its key (apps.catalogs in the agent config): "
        "docs/catalog.md.");
  }

  std::optional<int> Run() override {
    if (!*cat_) return std::nullopt;
    const std::string key = key_.empty() ? control::DefaultCatalogKey(dir_) : key_;
    if (*serve_) return Serve();
    auto writer = control::MakeRecordWriter(Output(g_));
    if (*list_ || *show_) {
      auto index = control::LoadCatalog(dir_);
      if (!index.ok()) return Fail(index.status().message());
      if (*show_ && !index->apps.count(name_)) {
        return Fail("the catalogue " + dir_ + " has no app " + name_);
      }
      for (const auto& r : control::CatalogRecords(*index, *show_ ? name_ : "")) writer->Write(r);
      return 0;
    }
    Result<control::Record> r = Status::Internal("no catalog command");
    if (*init_) r = control::CatalogInit(dir_, key);
    if (*add_) {
      add_spec_.dir = dir_;
      add_spec_.key_path = key;
      r = control::CatalogAdd(add_spec_);
    }
    if (!r.ok()) return Fail(r.status().message());
    writer->Write(*r);
    return 0;
  }

 private:
  int Serve() {
    auto server = control::CatalogServer::Start(dir_, listen_, threads_);
    if (!server.ok()) return Fail(server.status().message());
    const std::string host = listen_.substr(0, listen_.rfind(':'));
    const std::string url = "http://" + host + ":" + std::to_string((*server)->port()) + "/";
    control::MakeRecordWriter(Output(g_))
        ->Write(
            {{{"type", "catalog_server"}, {"url", url}, {"dir", dir_}},
             "serving " + dir_ + " at " + url + " (metrics at " + url + "metrics); Ctrl-C stops"});
    std::fflush(stdout);
    while (!Interrupted()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return 0;
  }

  Globals& g_;
  CLI::App *cat_ = nullptr, *init_ = nullptr, *add_ = nullptr, *list_ = nullptr, *show_ = nullptr,
           *serve_ = nullptr;
  std::string dir_, key_, name_, listen_ = "127.0.0.1:8700";
  int threads_ = 32;
  control::CatalogAddSpec add_spec_;
};

}  // namespace

std::unique_ptr<CommandGroup> CatalogCommand(Globals& g) { return std::make_unique<Catalog>(g); }

}  // namespace herd::cli
