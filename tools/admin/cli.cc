#include "tools/admin/cli.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/cli.h"
#include "common/txid.h"
#include "protocol/rpc.h"
#include "protocol/tls_flags.h"

namespace po = boost::program_options;

namespace txc::admin {

namespace {

constexpr const char* kGlobalSynopsis =
    "txadmin [--coordinator HOST:PORT[,...] | --config FILE] [--log-level L]";

void NoOptions(po::options_description&) {}

// The states `txns --state` filters on (the coordinator's ListTxns).
const std::vector<std::string>& TxnStates() {
  static const std::vector<std::string> states = {
      "in-doubt",      "stuck",        "hazard",   "heuristic",  "active",    "reserved",
      "voting",        "precommitting", "precommitted", "deciding", "completing", "ending",
      "committed",     "aborted"};
  return states;
}

void TxnsOptions(po::options_description& d) {
  d.add_options()("state", po::value<std::string>()->default_value(""),
                  "only transactions in this state: in-doubt, stuck, hazard (or heuristic: a "
                  "participant ended its branch the other way), active, reserved (txids a "
                  "client reserved for one-shot submits, unused yet), voting, precommitting, "
                  "precommitted (3PC), deciding, "
                  "completing, ending, committed, aborted (default: all)")(
      "older-than", po::value<std::string>(),
      "only transactions older than this (e.g. 30s, 5m, 1h, 250ms)");
}

void ResolveOptions(po::options_description& d) {
  d.add_options()("abort", po::bool_switch(), "force the transaction to abort")(
      "commit", po::bool_switch(),
      "force it to commit (refused unless every participant voted YES, in which case the group "
      "commits it by itself)")("reason", po::value<std::string>(), "why (required; kept in the log)")(
      "who", po::value<std::string>(), "the operator's name (default: the OS user)")(
      "yes", po::bool_switch(), "do not ask for confirmation");
}

void TxnForgetOptions(po::options_description& d) {
  d.add_options()("participant", po::value<std::string>(),
                  "the participant's resource name, as txn show lists it (required)")(
      "reason", po::value<std::string>(), "why (required; kept in the log)")(
      "who", po::value<std::string>(), "the operator's name (default: the OS user)")(
      "yes", po::bool_switch(), "do not ask for confirmation");
}

void RetryAllOptions(po::options_description& d) {
  d.add_options()("all", po::bool_switch(),
                  "every transaction whose decision is being delivered (required: retrying "
                  "everything is never implied)");
}

void BranchesOptions(po::options_description& d) {
  d.add_options()("in-doubt", po::bool_switch(),
                  "only branches that voted YES and wait for the group's decision (prepared)")(
      "heuristic", po::bool_switch(),
      "only branches an operator decided at the agent (txadmin agent HOST:PORT resolve), with "
      "the group's outcome beside each: agreed, hazard, or unknown while not heard");
}

void AgentResolveOptions(po::options_description& d) {
  d.add_options()("abort", po::bool_switch(), "roll the in-doubt branch back")(
      "commit", po::bool_switch(), "commit the in-doubt branch")(
      "resource", po::value<std::string>()->default_value(""),
      "only this resource's branch (default: every in-doubt branch of TXID at the agent)")(
      "reason", po::value<std::string>(), "why (required; recorded with the decision)")(
      "who", po::value<std::string>(), "the operator's name (default: the OS user)")(
      "yes", po::bool_switch(), "do not ask for confirmation");
}

void AgentForgetOptions(po::options_description& d) {
  d.add_options()("resource", po::value<std::string>()->default_value(""),
                  "only this resource's record (default: every record of TXID at the agent)")(
      "reason", po::value<std::string>(), "why (required; logged by the agent)")(
      "force", po::bool_switch(),
      "forget even while the group's outcome is not known (a decision arriving later is then "
      "acknowledged without comparison)")(
      "who", po::value<std::string>(), "the operator's name (default: the OS user)")(
      "yes", po::bool_switch(), "do not ask for confirmation");
}

void WalDumpOptions(po::options_description& d) {
  d.add_options()("txid", po::value<std::string>(), "only the records of this transaction (E.S)");
}

// Options every command has.
po::options_description CommandOptions(const CommandSpec& c) {
  po::options_description d("options of " + c.name);
  c.add_options(d);
  d.add_options()("json", po::bool_switch(), "machine-readable output (JSON)")(
      "help,h", "show this help");
  return d;
}

po::options_description GlobalOptions() {
  po::options_description d("global options (before the command)");
  d.add_options()("coordinator", po::value<std::string>(),
                  "HOST:PORT[,HOST:PORT...] of the coordinator group's replicas")(
      "config", po::value<std::string>(),
      "read the global options from this INI-style file (key = value, e.g. coordinator = ...); "
      "the command line wins")("log-level", po::value<std::string>()->default_value("error"),
                               "trace, debug, info, warn, error or off")("help,h", "show this help");
  rpc::AddTlsOptions(d);
  return d;
}

// "txn show" -> "txn show TXID"; "agent branches" -> "agent HOST:PORT branches".
std::string Words(const CommandSpec& c) {
  std::string w = c.name;
  if (c.scope == Scope::kAgent) w.insert(w.find(' '), " HOST:PORT");
  for (const auto& a : c.args) w += " " + a;
  return w;
}

std::string Synopsis(const CommandSpec& c) {
  std::string prefix = c.scope == Scope::kGroup ? kGlobalSynopsis : "txadmin";
  return prefix + " " + Words(c) + " [options]";
}

std::string CommandHelp(const CommandSpec& c) {
  std::ostringstream out;
  out << "usage: " << Synopsis(c) << "\n\n" << c.summary << "\n";
  if (!c.details.empty()) out << "\n" << c.details << "\n";
  out << "\n" << CommandOptions(c);
  return out.str();
}

// The commands whose name starts with `group ` ("txn", "agent", "wal").
std::string GroupHelp(const std::string& group) {
  std::ostringstream out;
  out << "commands of '" << group << "':\n";
  for (const auto& c : Commands()) {
    if (c.name.rfind(group + " ", 0) == 0) out << "  txadmin " << Words(c) << "\n      " << c.summary << "\n";
  }
  out << "(txadmin " << group << " ... COMMAND --help shows one command's options)\n";
  return out.str();
}

bool IsGroup(const std::string& word) {
  for (const auto& c : Commands()) {
    if (c.name.rfind(word + " ", 0) == 0) return true;
  }
  return false;
}

const CommandSpec* Find(const std::string& name) {
  for (const auto& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string CommandList() {
  std::string names;
  for (const auto& c : Commands()) names += (names.empty() ? "" : ", ") + c.name;
  return names;
}

ParseResult Usage(std::string text) {
  ParseResult r;
  r.kind = ParseResult::kUsageError;
  r.text = "txadmin: " + std::move(text);
  return r;
}

ParseResult Help(std::string text) {
  ParseResult r;
  r.kind = ParseResult::kHelp;
  r.text = std::move(text);
  return r;
}

bool WantsHelp(const std::vector<std::string>& args, size_t from) {
  for (size_t i = from; i < args.size(); ++i) {
    if (args[i] == "--") return false;
    if (args[i] == "--help" || args[i] == "-h") return true;
  }
  return false;
}

std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> commands = {
      {"status", Scope::kGroup, {},
       "the coordinator group: replicas, leader, epoch, commit and applied index, lag, "
       "unreachable replicas, storage failures",
       "Asks every replica named by --coordinator for its own view. When the leader does not\n"
       "answer, the leader and epoch are those the answering replicas name (the newest epoch's\n"
       "view), and the leader is listed as unreachable. lag: how far a replica's applied index\n"
       "trails the leader's (with the leader unreachable: the most advanced answering replica's).\n"
       "Exit 1 when no replica answers.",
       NoOptions},
      {"txns", Scope::kGroup, {},
       "the transactions the leader is driving",
       "in-doubt: not ended, and the outcome has not reached every participant;\n"
       "stuck: decided, and not delivered to every participant for longer than txcoord's\n"
       "--stuck-after (delivery goes on; txadmin txn show TXID gives each participant's last\n"
       "error, txadmin txn retry TXID retries now);\n"
       "hazard: a participant refused the decision (its branch ended the other way).",
       TxnsOptions},
      {"txns retry", Scope::kGroup, {},
       "resend every undelivered decision now (needs --all), restarting its backoff",
       "For after an outage: the leader resends each decided transaction's outcome at once to\n"
       "every participant that has not acknowledged it, instead of waiting for its backoff\n"
       "(up to txcoord's resend maximum). Prints how many transactions were resent.",
       RetryAllOptions},
      {"txn show", Scope::kGroup, {"TXID"},
       "one transaction: state, outcome, participants, acknowledgements, hazards",
       "Its outcome comes from the group (Outcome) even when the leader no longer drives it.\n"
       "While the leader drives it: each participant's vote, how often the decision was sent,\n"
       "the last error delivering it, and whether it is stuck.\n"
       "Exit 1 when the group never allocated TXID.",
       NoOptions},
      {"txn resolve", Scope::kGroup, {"TXID"},
       "an operator's decision for a transaction the group has not decided: --abort",
       "The leader chooses RESOLVE(ABORTED) through the log with --who and --reason, then\n"
       "delivers it like any decision. Refused, naming the decision, when the group has\n"
       "decided already (or is deciding a commit: every participant voted YES). A commit\n"
       "cannot be forced: only the participants' YES votes decide one. Asks for confirmation\n"
       "unless --yes.",
       ResolveOptions},
      {"txn forget", Scope::kGroup, {"TXID"},
       "stop delivering a decided transaction's outcome to a participant lost for good",
       "For a participant that will never come back (its machine and data are gone): the\n"
       "leader chooses FORGET through the log with --who and --reason; the participant then\n"
       "counts as acknowledged, the transaction can end, and a heuristic hazard is recorded\n"
       "(txns --state hazard): that participant may never apply the outcome. Refused for a\n"
       "transaction not decided (resolve it first) or a participant that acknowledged.\n"
       "Asks for confirmation unless --yes.",
       TxnForgetOptions},
      {"txn retry", Scope::kGroup, {"TXID"},
       "resend one transaction's decision now to every participant that has not acknowledged it",
       "The leader resends at once and restarts the backoff. Exit 1 when the leader is not\n"
       "delivering TXID's decision (not decided yet, or already ended: txadmin txn show TXID).",
       NoOptions},
      {"agent branches", Scope::kAgent, {},
       "the branches one agent holds: txid, resource, state, age",
       "prepared branches are in doubt: they voted YES and wait for the group's decision.\n"
       "A branch decided heuristically (txadmin agent HOST:PORT resolve) stays listed, with\n"
       "the group's outcome beside it, until txadmin agent HOST:PORT forget.",
       BranchesOptions},
      {"agent resolve", Scope::kAgent, {"TXID"},
       "a heuristic decision at the agent for an in-doubt branch while the group is unreachable",
       "Commits (--commit) or rolls back (--abort) every branch of TXID the agent holds in\n"
       "doubt (or --resource's), recording the decision, --reason and --who in the resource's\n"
       "WAL in the same local transaction. Once the group answers, the agent compares: the\n"
       "same outcome is 'agreed'; the other is a heuristic hazard (the agent logs an error,\n"
       "refuses the group's decision, and the coordinator lists it under txns --state hazard):\n"
       "repair the data by hand, then txadmin agent HOST:PORT forget TXID. Only for when the\n"
       "group cannot be reached for long: the group's decision is the only safe one. Refused\n"
       "when no branch of TXID is in doubt there. Asks for confirmation unless --yes.",
       AgentResolveOptions},
      {"agent forget", Scope::kAgent, {"TXID"},
       "drop the record of a heuristic decision once the data is repaired",
       "The agent stops listing TXID under branches --heuristic. Refused while the group's\n"
       "outcome is not known yet (unknown in branches --heuristic) unless --force. Exit 1\n"
       "when it keeps no heuristic record of TXID. Asks for confirmation unless --yes.",
       AgentForgetOptions},
      {"wal dump", Scope::kFile, {"PATH"},
       "read a write-ahead log offline: an agent's resource database (txc_branches, "
       "txc_changes), the WAL of an agent's database resource (DATA/NAME.xa.db: xa_branches, "
       "xa_statements) or a coordinator replica's log (DIR/paxos.log, DIR/coord.log)",
       "PATH may be a coordinator's data directory. The file is opened read-only with a short\n"
       "busy timeout and read in one read transaction, which never blocks the writer (all these\n"
       "logs run in SQLite's WAL mode): safe on the file of a running process. Prints per record\n"
       "its index or txid, type, outcome or state, participants and times where the log\n"
       "stores them; for a database resource also each branch's gid and the statements it ran\n"
       "(SQL text and parameter count), and its heuristic records.",
       WalDumpOptions},
  };
  return commands;
}

std::string MainHelp() {
  std::ostringstream out;
  out << "usage: " << kGlobalSynopsis << " COMMAND [ARGS] [options]\n"
      << "       txadmin agent HOST:PORT COMMAND [options]\n"
      << "       txadmin wal dump PATH [options]\n\n"
      << "commands:\n";
  for (const auto& c : Commands()) out << "  " << Words(c) << "\n      " << c.summary << "\n";
  out << "\nEvery command takes --json (machine-readable output) and --help.\n"
      << "Exit codes: 0 ok, 1 the operation failed, 2 usage error.\n\n"
      << GlobalOptions();
  return out.str();
}

ParseResult Parse(const std::vector<std::string>& args) {
  po::options_description global = GlobalOptions();
  // Global options: every token before the first word that is not an option.
  std::vector<std::string> global_tokens;
  size_t i = 0;
  for (; i < args.size() && args[i].size() > 1 && args[i][0] == '-'; ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--help" || a == "-h") return Help(MainHelp());
    std::string name = a.substr(a.find_first_not_of('-'));
    bool inline_value = name.find('=') != std::string::npos;
    name = name.substr(0, name.find('='));
    const po::option_description* d = global.find_nothrow(name, false);
    if (d == nullptr) {
      return Usage("unknown option '" + a + "' before the command; a command's own options go "
                   "after it (txadmin COMMAND --help lists them, txadmin --help the commands)");
    }
    global_tokens.push_back(a);
    if (!inline_value && d->semantic()->max_tokens() > 0) {
      if (i + 1 >= args.size()) return Usage("option '" + a + "' needs a value (txadmin --help)");
      global_tokens.push_back(args[++i]);
    }
  }
  po::variables_map gvm;
  try {
    po::store(po::command_line_parser(global_tokens).options(global).run(), gvm);
    if (gvm.count("config")) {
      // Stored after the command line, so a value given there wins.
      std::string path = gvm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) {
        return Usage("cannot read config file " + path +
                     ": check the path, or give --coordinator HOST:PORT[,...] instead");
      }
      po::store(po::parse_config_file(in, global), gvm);
    }
    po::notify(gvm);
  } catch (const po::error& e) {
    return Usage(std::string(e.what()) + " (txadmin --help lists the global options)");
  }

  if (i >= args.size()) return Usage("no command given; commands: " + CommandList() + " (txadmin --help)");
  // The command's words.
  std::string word = args[i++];
  std::string name = word;
  std::string agent;
  bool own_command = Find(word) != nullptr &&
                     (i >= args.size() || Find(word + " " + args[i]) == nullptr);
  if (IsGroup(word) && !own_command) {
    if (word == "agent") {
      // "agent HOST:PORT VERB", or "agent --help", or "agent VERB --help".
      if (i >= args.size() || args[i] == "--help" || args[i] == "-h") {
        if (i < args.size()) return Help(GroupHelp(word));
        return Usage("agent needs the agent's address and a command, e.g. txadmin agent "
                     "HOST:PORT branches (txadmin agent --help)");
      }
      if (const CommandSpec* c = Find(word + " " + args[i]); c != nullptr) {
        if (WantsHelp(args, i + 1)) return Help(CommandHelp(*c));
        return Usage("agent " + args[i] + " needs the agent's address first: txadmin agent "
                     "HOST:PORT " + args[i] + " (its --listen address)");
      }
      agent = args[i++];
      if (auto ep = rpc::ParseEndpoint(agent); !ep.ok()) {
        return Usage("agent address '" + agent + "': " + ep.status().message() +
                     "; give the agent's --listen HOST:PORT");
      }
    }
    if (i >= args.size() || args[i][0] == '-') {
      if (i < args.size() && (args[i] == "--help" || args[i] == "-h")) return Help(GroupHelp(word));
      return Usage(word + " needs a command: " + GroupHelp(word));
    }
    name = word + " " + args[i++];
  }
  const CommandSpec* command = Find(name);
  if (command == nullptr) {
    return Usage("unknown command '" + name + "'; commands: " + CommandList() +
                 " (txadmin --help)");
  }
  if (WantsHelp(args, i)) return Help(CommandHelp(*command));

  ParseResult r;
  Invocation& inv = r.invocation;
  inv.command = command;
  inv.agent = agent;
  inv.log_level = gvm["log-level"].as<std::string>();
  inv.tls.cert = gvm["tls-cert"].as<std::string>();
  inv.tls.key = gvm["tls-key"].as<std::string>();
  inv.tls.ca = gvm["tls-ca"].as<std::string>();
  inv.insecure = gvm["insecure"].as<bool>();
  po::options_description desc = CommandOptions(*command);
  po::options_description all;
  all.add(desc);
  all.add_options()("txadmin-args", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("txadmin-args", -1);
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  try {
    po::store(po::command_line_parser(rest).options(all).positional(pos).run(), inv.options);
    po::notify(inv.options);
  } catch (const po::error& e) {
    return Usage(command->name + ": " + e.what() + " (txadmin " + Words(*command) +
                 " --help lists its options)");
  }
  if (inv.options.count("txadmin-args")) {
    inv.args = inv.options["txadmin-args"].as<std::vector<std::string>>();
  }
  if (inv.args.size() < command->args.size()) {
    return Usage(command->name + " needs " + command->args[inv.args.size()] + ": txadmin " +
                 Words(*command));
  }
  if (inv.args.size() > command->args.size()) {
    return Usage(command->name + ": unexpected argument '" + inv.args[command->args.size()] +
                 "' (txadmin " + Words(*command) + " --help)");
  }
  for (size_t k = 0; k < command->args.size(); ++k) {
    if (command->args[k] == "TXID" && !ParseTxId(inv.args[k])) {
      return Usage("'" + inv.args[k] + "' is not a txid: write it EPOCH.SEQ, as txadmin txns prints it");
    }
  }
  if (inv.options.count("txid") && !ParseTxId(inv.options["txid"].as<std::string>())) {
    return Usage("--txid '" + inv.options["txid"].as<std::string>() +
                 "' is not a txid: write it EPOCH.SEQ");
  }
  if (inv.options.count("state")) {
    const std::string& state = inv.options["state"].as<std::string>();
    const auto& known = TxnStates();
    if (!state.empty() && std::find(known.begin(), known.end(), state) == known.end()) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      return Usage("unknown state '" + state + "' for --state; give one of " + list);
    }
  }
  if (inv.options.count("older-than")) {
    const std::string& d = inv.options["older-than"].as<std::string>();
    if (!cli::ParseDuration(d).has_value()) {
      return Usage("--older-than '" + d + "' is not a duration: write e.g. 30s, 5m, 1h, 250ms");
    }
  }
  if (command->name == "txn resolve") {
    bool abort = inv.options["abort"].as<bool>(), commit = inv.options["commit"].as<bool>();
    if (abort == commit) {
      return Usage("txn resolve needs exactly one of --abort or --commit (txadmin txn resolve --help)");
    }
    if (!inv.options.count("reason") || inv.options["reason"].as<std::string>().empty()) {
      return Usage("txn resolve needs --reason TEXT: why (it is kept in the log with who decided)");
    }
  }
  if (command->name == "txn forget") {
    if (!inv.options.count("participant") || inv.options["participant"].as<std::string>().empty()) {
      return Usage("txn forget needs --participant NAME: the resource whose delivery to stop "
                   "(txadmin txn show TXID lists them)");
    }
    if (!inv.options.count("reason") || inv.options["reason"].as<std::string>().empty()) {
      return Usage("txn forget needs --reason TEXT: why (it is kept in the log with who)");
    }
  }
  if (command->name == "agent resolve") {
    bool abort = inv.options["abort"].as<bool>(), commit = inv.options["commit"].as<bool>();
    if (abort == commit) {
      return Usage("agent resolve needs exactly one of --abort or --commit (txadmin agent "
                   "HOST:PORT resolve --help)");
    }
  }
  if ((command->name == "agent resolve" || command->name == "agent forget") &&
      (!inv.options.count("reason") || inv.options["reason"].as<std::string>().empty())) {
    return Usage(command->name + " needs --reason TEXT: why (the agent records it with who)");
  }
  if (command->name == "agent branches" && inv.options["in-doubt"].as<bool>() &&
      inv.options["heuristic"].as<bool>()) {
    return Usage("agent branches takes one of --in-doubt or --heuristic (a heuristically decided "
                 "branch is no longer in doubt)");
  }
  if (command->name == "txns retry" && !inv.options["all"].as<bool>()) {
    return Usage("txns retry resends every undelivered decision: say so with --all (or retry "
                 "one with txadmin txn retry TXID)");
  }
  inv.json = inv.options["json"].as<bool>();
  if (command->scope == Scope::kGroup) {
    if (!gvm.count("coordinator")) {
      return Usage(command->name + " asks the coordinator group: give --coordinator "
                   "HOST:PORT[,...] (or --config FILE with coordinator = ...) before the command");
    }
    inv.coordinators = SplitList(gvm["coordinator"].as<std::string>());
    if (inv.coordinators.empty()) return Usage("--coordinator is empty: list HOST:PORT[,...]");
    for (const auto& c : inv.coordinators) {
      if (auto ep = rpc::ParseEndpoint(c); !ep.ok()) {
        return Usage("--coordinator '" + c + "': " + ep.status().message() +
                     "; list the replicas' --listen addresses");
      }
    }
  }
  r.kind = ParseResult::kRun;
  return r;
}

}  // namespace txc::admin
