#include "tests/support/pg_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/process.h"

extern char** environ;

namespace txc::testing {

namespace {

constexpr char kBinDir[] = "/usr/lib/postgresql/15/bin";

std::string Bin(const char* name) { return std::string(kBinDir) + "/" + name; }

// The uid and gid the server runs as.
struct Unprivileged {
  uid_t uid = 65534;
  gid_t gid = 65534;
};

Unprivileged Nobody() {
  Unprivileged u;
  if (passwd* pw = getpwnam("nobody")) u.uid = pw->pw_uid;
  if (group* gr = getgrnam("nogroup")) u.gid = gr->gr_gid;
  return u;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, const std::string& text, bool append = false) {
  std::ofstream out(path, append ? std::ios::app : std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

// The environment for a server tool: ours without any PG* variable (a
// developer's PGHOST or PGPASSWORD must not steer the test's server or psql),
// with HOME pointing nowhere for the unprivileged user.
std::vector<std::string> ToolEnv(bool unprivileged) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "PG", 2) == 0) continue;
    if (unprivileged && std::strncmp(*e, "HOME=", 5) == 0) continue;
    env.emplace_back(*e);
  }
  if (unprivileged) env.emplace_back("HOME=/nonexistent");
  return env;
}

// Forks and execs argv with stdout and stderr appended to `out_path` and stdin
// from `in_path` (or /dev/null), as nobody:nogroup when `unprivileged`. The
// child gets SIGKILL if the calling thread exits. Returns the pid, -1 on
// failure.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& in_path, bool unprivileged) {
  Unprivileged who = Nobody();
  // Everything the child needs is built before fork: it only makes system calls.
  std::vector<std::string> env = ToolEnv(unprivileged);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int in = open(in_path.empty() ? "/dev/null" : in_path.c_str(), O_RDONLY);
  if (out < 0 || in < 0) _exit(126);
  dup2(in, 0);
  dup2(out, 1);
  dup2(out, 2);
  if (unprivileged) {
    if (setgroups(0, nullptr) != 0 || setgid(who.gid) != 0 || setuid(who.uid) != 0) _exit(125);
  }
  // After the credential change, which clears it.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(124);  // the parent died before prctl
  execve(args[0], args.data(), envp.data());
  _exit(127);
}

// Waits up to `timeout_ms` for `pid` (our child) to exit; SIGKILLs it then.
// Returns its exit code, or -1 if it was killed or did not exit normally.
int WaitChild(pid_t pid, int timeout_ms) {
  int st = 0;
  for (int waited = 0;; waited += 10) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0) return -1;
    if (waited >= timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Runs argv to completion (at most `timeout_ms`); its output goes to *output.
int RunTool(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& in_path, bool unprivileged, int timeout_ms, std::string* output) {
  std::filesystem::remove(out_path);
  pid_t pid = Spawn(argv, out_path, in_path, unprivileged);
  if (pid < 0) return -1;
  int rc = WaitChild(pid, timeout_ms);
  if (output != nullptr) *output = ReadFile(out_path);
  return rc;
}

// The state and parent of a process from /proc/<pid>/stat; false if gone.
bool ProcStat(pid_t pid, char* state, pid_t* ppid) {
  std::string s = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = s.rfind(')');
  if (close_paren == std::string::npos || close_paren + 4 > s.size()) return false;
  std::istringstream rest(s.substr(close_paren + 2));
  long parent = 0;
  rest >> *state >> parent;
  *ppid = static_cast<pid_t>(parent);
  return true;
}

// The live children of `parent`.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    char state = 0;
    pid_t ppid = 0;
    if (ProcStat(static_cast<pid_t>(pid), &state, &ppid) && ppid == parent && state != 'Z') {
      out.push_back(static_cast<pid_t>(pid));
    }
  }
  closedir(d);
  return out;
}

// True once none of `pids` is alive (a zombie counts as gone), up to `ms`.
bool WaitGone(const std::vector<pid_t>& pids, int ms) {
  for (int waited = 0;; waited += 10) {
    bool any = false;
    for (pid_t p : pids) {
      char state = 0;
      pid_t ppid = 0;
      if (ProcStat(p, &state, &ppid) && state != 'Z') any = true;
    }
    if (!any) return true;
    if (waited >= ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string SqlLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

std::string SqlIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

// The System V segment a postmaster's data directory names (7th line of
// postmaster.pid: "<key> <id>"), removed if nothing is attached: a killed
// postmaster leaves it behind.
void RemoveShmOf(const std::string& data_dir) {
  std::istringstream in(ReadFile(data_dir + "/postmaster.pid"));
  std::string line;
  for (int i = 0; i < 7 && std::getline(in, line); ++i) {
  }
  std::istringstream fields(line);
  long key = 0, id = -1;
  if (!(fields >> key >> id) || id < 0) return;
  shmid_ds ds{};
  if (shmctl(static_cast<int>(id), IPC_STAT, &ds) == 0 && ds.shm_nattch == 0 &&
      ds.shm_perm.__key == static_cast<key_t>(key)) {
    shmctl(static_cast<int>(id), IPC_RMID, nullptr);
  }
}

// A test process killed outright (SIGKILL, a crash) takes its server down
// (PR_SET_PDEATHSIG) but leaves the directory and the postmaster's small
// System V segment. Sweeps what such processes left: directories of ours
// older than 15 minutes (a test times out long before) whose postmaster is
// not running.
void SweepStale() {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto now = fs::file_time_type::clock::now();
  for (const auto& e : fs::directory_iterator("/tmp", ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("txc-pg.", 0) != 0 || !e.is_directory(ec)) continue;
    auto age = now - fs::last_write_time(e.path(), ec);
    if (ec || age < std::chrono::minutes(15)) continue;
    std::string data = e.path().string() + "/data";
    std::istringstream pidfile(ReadFile(data + "/postmaster.pid"));
    long pid = 0;
    if (pidfile >> pid && pid > 0 && kill(static_cast<pid_t>(pid), 0) == 0) continue;
    RemoveShmOf(data);
    fs::remove_all(e.path(), ec);
  }
}

}  // namespace

PgServer::PgServer(PgServerOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/txc-pg.XXXXXX";
  const char* made = mkdtemp(tmpl);
  dir_ = made != nullptr ? made : "";
  data_ = dir_ + "/data";
  sock_ = dir_ + "/sock";
  log_ = dir_ + "/postgres.log";
}

PgServer::~PgServer() {
  (void)Stop();
  if (started_) RemoveLeftoverShm();  // after a Crash() with no Restart()
  if (!dir_.empty() && std::getenv("TXC_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PgServer::conninfo() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + options_.database +
         " user=" + options_.user;
}

Status PgServer::Start() {
  if (started_) return Status::InvalidArgument("PgServer::Start called twice");
  if (dir_.empty()) return Status::Internal("PgServer: mkdtemp failed");
  started_ = true;
  SweepStale();
  Unprivileged who = Nobody();
  // The server (as nobody) must traverse the directory; data and sock are its own.
  if (chmod(dir_.c_str(), 0755) != 0 || mkdir(data_.c_str(), 0700) != 0 ||
      mkdir(sock_.c_str(), 0755) != 0 || chown(data_.c_str(), who.uid, who.gid) != 0 ||
      chown(sock_.c_str(), who.uid, who.gid) != 0) {
    return Status::Internal("PgServer: cannot prepare " + dir_ + ": " + std::strerror(errno));
  }
  port_ = FreePort();

  std::string out;
  int rc = RunTool({Bin("initdb"), "-D", data_, "-U", "postgres", "--auth=trust", "--no-sync",
                    "--no-instructions", "-E", "UTF8", "--locale=C"},
                   dir_ + "/initdb.log", "", true, 60000, &out);
  if (rc != 0) return Status::Internal("initdb failed (" + std::to_string(rc) + "): " + out);

  std::string conf =
      "\n# txc::testing::PgServer\n"
      "listen_addresses = '127.0.0.1'\n"
      "port = " + std::to_string(port_) + "\n"
      "unix_socket_directories = '" + sock_ + "'\n"
      "max_prepared_transactions = " + std::to_string(options_.max_prepared_transactions) + "\n"
      "max_connections = 40\n"
      "shared_buffers = 16MB\n"
      "fsync = on\n"
      "logging_collector = off\n"
      "log_line_prefix = '%m [%p] %q%u@%d '\n"
      "password_encryption = '" + options_.auth_method + "'\n";
  std::string hba = "local all all trust\n";
  if (options_.password) {
    hba += "host all " + options_.user + " 127.0.0.1/32 " + options_.auth_method + "\n";
  }
  hba += "host all all 127.0.0.1/32 trust\n";
  if (!WriteFile(data_ + "/postgresql.conf", conf, /*append=*/true) ||
      !WriteFile(data_ + "/pg_hba.conf", hba)) {
    return Status::Internal("PgServer: cannot write the configuration in " + data_);
  }
  TXC_RETURN_IF_ERROR(Launch());

  std::string setup = "CREATE ROLE " + SqlIdent(options_.user) + " LOGIN";
  if (options_.password) setup += " PASSWORD " + SqlLiteral(*options_.password);
  setup += ";\nCREATE DATABASE " + SqlIdent(options_.database) + " OWNER " +
           SqlIdent(options_.user) + ";\n";
  auto r = Sql(setup, "postgres");
  if (!r.ok()) return r.status();
  return Status::Ok();
}

Status PgServer::Launch() {
  pid_ = Spawn({Bin("postgres"), "-D", data_}, log_, "", true);
  if (pid_ < 0) return Status::Internal("PgServer: fork failed");
  return WaitReady(60000);
}

Status PgServer::WaitReady(int timeout_ms) {
  std::string port = std::to_string(port_);
  const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", nullptr};
  const char* values[] = {"127.0.0.1", port.c_str(), "postgres", "postgres", "2", nullptr};
  for (int waited = 0;; waited += 50) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Internal("postgres exited while starting; log:\n" + LogTail());
    }
    if (PQpingParams(keys, values, 0) == PQPING_OK) return Status::Ok();
    if (waited >= timeout_ms) {
      KillAll();
      return Status::Timeout("postgres did not accept queries within " +
                             std::to_string(timeout_ms) + " ms; log:\n" + LogTail());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void PgServer::KillAll() {
  if (pid_ <= 0) return;
  // Stopped, the postmaster cannot fork while its children are listed.
  kill(pid_, SIGSTOP);
  std::vector<pid_t> children = ChildrenOf(pid_);
  for (pid_t c : children) kill(c, SIGKILL);
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  WaitGone(children, 10000);
}

Status PgServer::Crash() {
  if (pid_ <= 0) return Status::InvalidArgument("PgServer::Crash: not running");
  KillAll();
  return Status::Ok();
}

Status PgServer::Restart() {
  if (!started_) return Status::InvalidArgument("PgServer::Restart before Start");
  if (pid_ > 0) return Status::InvalidArgument("PgServer::Restart: still running");
  WriteFile(log_, "\n--- txc::testing::PgServer restart ---\n", /*append=*/true);
  return Launch();
}

Status PgServer::Stop() {
  if (pid_ <= 0) return Status::Ok();
  kill(pid_, SIGINT);  // fast shutdown: roll back sessions, checkpoint, exit
  int st = 0;
  for (int waited = 0; waited < 30000; waited += 10) {
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  KillAll();
  RemoveLeftoverShm();
  return Status::Timeout("postgres did not shut down within 30 s; killed");
}

void PgServer::RemoveLeftoverShm() { RemoveShmOf(data_); }

Result<std::string> PgServer::Sql(const std::string& sql, const std::string& database) const {
  if (pid_ <= 0) return Status::Unavailable("PgServer::Sql: the server is not running");
  static int counter = 0;
  std::string base = dir_ + "/psql-" + std::to_string(++counter);
  if (!WriteFile(base + ".sql", sql)) return Status::Internal("cannot write " + base + ".sql");
  std::string out;
  int rc = RunTool({Bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", sock_,
                    "-p", std::to_string(port_), "-U", "postgres", "-d",
                    database.empty() ? options_.database : database, "-f", base + ".sql"},
                   base + ".out", base + ".sql", false, 60000, &out);
  if (rc != 0) {
    return Status::Internal("psql failed (" + std::to_string(rc) + ") running:\n" + sql +
                            "\noutput:\n" + out);
  }
  return out;
}

std::string PgServer::LogTail(size_t bytes) const {
  std::string s = ReadFile(log_);
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

}  // namespace txc::testing
