#include "tests/support/mariadb_server.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace txc::testing {

namespace {

constexpr char kInstallDb[] = "/usr/bin/mariadb-install-db";
constexpr char kServer[] = "/usr/sbin/mariadbd";
constexpr char kClient[] = "/usr/bin/mariadb";

struct Nobody {
  uid_t uid;
  gid_t gid;
};

Result<Nobody> LookUpNobody() {
  const passwd* pw = getpwnam("nobody");
  const group* gr = getgrnam("nogroup");
  if (pw == nullptr || gr == nullptr) return Status::Internal("no user nobody or group nogroup");
  return Nobody{pw->pw_uid, gr->gr_gid};
}

// Forks a child that becomes nobody/nogroup, then asks to die with its
// parent, then runs argv with stdout and stderr appended to `log`.
pid_t SpawnAsNobody(const Nobody& who, const std::vector<std::string>& argv, const std::string& log) {
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  if (setgroups(0, nullptr) != 0 || setresgid(who.gid, who.gid, who.gid) != 0 ||
      setresuid(who.uid, who.uid, who.uid) != 0) {
    _exit(126);
  }
  // After the uid change, which clears a parent-death signal set before it.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(125);
  execv(args[0], args.data());
  _exit(127);
}

// Waits up to `ms` for `pid` to exit; its wait status in *status.
bool WaitFor(pid_t pid, int ms, int* status) {
  for (int waited = 0; waited <= ms; waited += 10) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string Tail(const std::string& path, size_t bytes) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

}  // namespace

MariaDbServer::MariaDbServer()
    : data_(dir_.path + "/data"),
      socket_(dir_.path + "/mysqld.sock"),
      log_(dir_.path + "/mariadbd.log"),
      port_(FreePort()) {}

MariaDbServer::~MariaDbServer() { (void)Stop(); }

std::string MariaDbServer::conninfo(const std::string& user) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " database=" + kDatabase + " user=" + user;
}

std::string MariaDbServer::LogTail(size_t bytes) const { return Tail(log_, bytes); }

Status MariaDbServer::Start() {
  auto who = LookUpNobody();
  if (!who.ok()) return who.status();
  // Its own tmpdir: temporary tables in a shared /tmp have been seen to
  // vanish under a concurrent install-db ("Could not remove temporary table").
  const std::string tmp = dir_.path + "/tmp";
  if (chown(dir_.path.c_str(), who->uid, who->gid) != 0 || mkdir(data_.c_str(), 0700) != 0 ||
      chown(data_.c_str(), who->uid, who->gid) != 0 || mkdir(tmp.c_str(), 0700) != 0 ||
      chown(tmp.c_str(), who->uid, who->gid) != 0) {
    return Status::Internal("cannot prepare " + data_ + " for nobody");
  }
  std::string install_log = dir_.path + "/install-db.log";
  pid_t pid = SpawnAsNobody(*who,
                            {kInstallDb, "--no-defaults", "--datadir=" + data_, "--tmpdir=" + tmp, "--skip-test-db",
                             "--auth-root-authentication-method=normal", "--skip-name-resolve",
                             "--innodb-log-file-size=16M", "--innodb-buffer-pool-size=32M"},
                            install_log);
  if (pid < 0) return Status::Internal("fork failed");
  int status = 0;
  if (!WaitFor(pid, 120000, &status)) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return Status::Timeout("mariadb-install-db did not finish in 120 s: " + Tail(install_log, 2000));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::Internal("mariadb-install-db failed: " + Tail(install_log, 3000));
  }
  TXC_RETURN_IF_ERROR(Launch());
  std::string db = kDatabase;
  std::string grants;
  for (const char* user : {kUser, kPasswordUser}) {
    grants += "GRANT ALL ON " + db + ".* TO '" + std::string(user) + "'@'%';\n";
  }
  auto out = Sql("CREATE DATABASE " + db + ";\n" + "CREATE USER '" + kUser + "'@'%';\n" + "CREATE USER '" +
                 kPasswordUser + "'@'%' IDENTIFIED BY '" + kPassword + "';\n" + grants);
  if (!out.ok()) return out.status();
  return Status::Ok();
}

Status MariaDbServer::Launch() {
  auto who = LookUpNobody();
  if (!who.ok()) return who.status();
  std::vector<std::string> argv = {kServer,
                                   "--no-defaults",
                                   "--datadir=" + data_,
                                   "--tmpdir=" + dir_.path + "/tmp",
                                   "--socket=" + socket_,
                                   "--port=" + std::to_string(port_),
                                   "--bind-address=127.0.0.1",
                                   "--pid-file=" + dir_.path + "/mariadbd.pid",
                                   "--log-error=" + log_,
                                   "--skip-name-resolve",
                                   "--innodb-flush-log-at-trx-commit=1",
                                   "--innodb-log-file-size=16M",
                                   "--innodb-buffer-pool-size=32M",
                                   "--max-connections=100"};
  pid_ = SpawnAsNobody(*who, argv, dir_.path + "/mariadbd.out");
  if (pid_ < 0) return Status::Internal("fork failed");
  for (int waited = 0; waited <= 60000; waited += 50) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Internal("mariadbd exited while starting: " + LogTail());
    }
    if (WaitPort(port_, 0) && Sql("SELECT 1").ok()) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Crash();
  return Status::Timeout("mariadbd did not answer in 60 s: " + LogTail());
}

void MariaDbServer::Crash() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

Status MariaDbServer::Restart() {
  if (pid_ > 0) return Status::InvalidArgument("mariadbd is running");
  return Launch();
}

Status MariaDbServer::Stop() {
  if (pid_ <= 0) return Status::Ok();
  kill(pid_, SIGTERM);
  int status = 0;
  if (WaitFor(pid_, 60000, &status)) {
    pid_ = -1;
    return Status::Ok();
  }
  Crash();
  return Status::Timeout("mariadbd did not shut down in 60 s; killed");
}

Result<std::string> MariaDbServer::Sql(const std::string& sql) {
  std::string file = dir_.path + "/sql." + std::to_string(++sql_counter_);
  {
    std::ofstream out(file);
    out << sql << "\n";
  }
  std::string cmd = std::string(kClient) + " --no-defaults --socket=" + socket_ +
                    " --user=root --batch --skip-column-names < " + file + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return Status::Internal("popen failed");
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  int status = pclose(p);
  unlink(file.c_str());
  if (status != 0) return Status::SqlError("mariadb client: " + output);
  return output;
}

}  // namespace txc::testing
