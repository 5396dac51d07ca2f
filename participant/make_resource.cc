// MakeResource: the built-in resource kinds behind txagent's --resource
// NAME=KIND:... (the SDK interface itself is resource_manager.cc, in the
// core library; this file links the resources' own databases).
#include "participant/mariadb_driver.h"
#include "participant/pg_driver.h"
#include "participant/queue_resource.h"
#include "participant/resource_manager.h"
#include "participant/sqlite_resource.h"
#include "participant/xa_resource.h"

namespace txc::participant {

Result<std::unique_ptr<ResourceManager>> MakeResource(const std::string& spec,
                                                      const ResourceContext& context) {
  // The spec of a database holds a connection string: never echo a password.
  const std::string shown = spec.find("password") == std::string::npos
                                ? spec
                                : spec.substr(0, spec.find('=') + 1) + "...";
  const std::string where = "resource spec \"" + shown + "\": ";
  auto eq = spec.find('=');
  if (eq == std::string::npos) {
    return Status::InvalidArgument(where + "expected NAME=KIND:PATH, e.g. bank_a=sqlite:/var/lib/bank_a.db");
  }
  std::string name = spec.substr(0, eq);
  std::string rest = spec.substr(eq + 1);
  if (!ValidResourceName(name)) {
    return Status::InvalidArgument(where + "name \"" + name +
                                   "\" must be 1-64 characters of A-Z a-z 0-9 _ -");
  }
  auto colon = rest.find(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument(where + "expected KIND:PATH after \"" + name +
                                   "=\", e.g. sqlite:/var/lib/" + name + ".db");
  }
  std::string kind = rest.substr(0, colon);
  std::string path = rest.substr(colon + 1);
  if (kind == "postgres" || kind == "mariadb") {
    std::optional<std::string> password;
    if (auto it = context.passwords.find(name); it != context.passwords.end()) password = it->second;
    auto driver = kind == "postgres" ? xa::MakePostgresDriver(name, path, password)
                                     : xa::MakeMariaDbDriver(name, path, password);
    if (!driver.ok()) return driver.status();
    XaResourceOptions o;
    o.wal_path = context.data_dir + "/" + name + ".xa.db";
    o.max_connections = context.db_pool_size;
    auto r = XaResource::Open(name, std::move(*driver), o);
    if (!r.ok()) return r.status();
    return std::unique_ptr<ResourceManager>(std::move(*r));
  }
  if (kind == "queue") {
    if (path.empty()) {
      return Status::InvalidArgument(where + "empty queue file path after \"queue:\"");
    }
    auto r = QueueResource::Open(name, path);
    if (!r.ok()) return Status(r.status().code(), where + r.status().message());
    return std::unique_ptr<ResourceManager>(std::move(*r));
  }
  if (kind != "sqlite") {
    return Status::InvalidArgument(where + "unknown resource kind \"" + kind +
                                   "\" (supported: sqlite, postgres, mariadb, queue)");
  }
  // sqlite:PATH?OPTION=VALUE&...: options of the resource, each known one
  // checked (a misspelt option must not silently leave DDL allowed).
  SqliteResourceOptions options;
  if (auto q = path.find('?'); q != std::string::npos) {
    std::string query = path.substr(q + 1);
    path = path.substr(0, q);
    size_t at = 0;
    while (at <= query.size()) {
      size_t amp = query.find('&', at);
      std::string item = query.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
      at = amp == std::string::npos ? query.size() + 1 : amp + 1;
      if (item == "ddl=allow") {
        options.allow_ddl = true;
      } else if (item == "ddl=deny") {
        options.allow_ddl = false;
      } else {
        return Status::InvalidArgument(where + "unknown option \"" + item +
                                       "\" after \"?\" (an sqlite resource takes ddl=allow or "
                                       "ddl=deny, e.g. " + name + "=sqlite:/var/lib/" + name +
                                       ".db?ddl=deny)");
      }
    }
  }
  if (path.empty()) {
    return Status::InvalidArgument(where + "empty database path after \"sqlite:\"");
  }
  auto r = SqliteResource::Open(name, path, options);
  if (!r.ok()) return Status(r.status().code(), where + r.status().message());
  return std::unique_ptr<ResourceManager>(std::move(*r));
}

}  // namespace txc::participant
