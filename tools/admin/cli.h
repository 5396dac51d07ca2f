// txadmin's command line: global options, then a command with options of
// its own.
//
//   txadmin [--coordinator LIST | --config FILE] [--log-level L] COMMAND [ARGS] [OPTIONS]
//
// Commands are declared once in a table (Commands()); the parser, the help
// texts and the dispatch in commands.cc all read it, so a new command is one
// entry there plus its Run function. Exit codes: kExitOk, kExitError (the
// operation failed, e.g. no replica answered), kExitUsage (the command line
// is wrong: unknown command or option, missing argument).
//
// Pure: no I/O besides reading the --config file (the TLS files are loaded
// by Main). Thread-compatible.
#pragma once

#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "common/tls_config.h"

namespace txc::admin {

enum ExitCode { kExitOk = 0, kExitError = 1, kExitUsage = 2 };

// Where a command's words sit: "status", "txn show", "agent HOST:PORT branches".
enum class Scope {
  kGroup,  // talks to the coordinator group: needs --coordinator (or --config)
  kAgent,  // "agent HOST:PORT VERB": talks to one agent
  kFile,   // reads a file offline
};

struct CommandSpec {
  std::string name;      // the words: "status", "txn show", "agent branches", "wal dump"
  Scope scope;
  std::vector<std::string> args;  // required positional arguments, e.g. {"TXID"}
  std::string summary;   // one line, for the command list
  std::string details;   // the rest of its --help: what it prints
  // Adds the command's options besides --json and --help (which every command has).
  void (*add_options)(boost::program_options::options_description&);
};

// Every command txadmin has, in the order --help lists them.
const std::vector<CommandSpec>& Commands();

struct Invocation {
  const CommandSpec* command = nullptr;
  std::vector<std::string> coordinators;  // kGroup: HOST:PORT of every replica named
  std::string agent;                      // kAgent: HOST:PORT
  std::vector<std::string> args;          // the positional arguments, as in CommandSpec::args
  bool json = false;
  std::string log_level = "error";
  TlsConfig tls;          // --tls-cert/--tls-key/--tls-ca (an admin certificate)
  bool insecure = false;  // --insecure: plaintext to addresses other than loopback
  boost::program_options::variables_map options;  // the command's own options
};

struct ParseResult {
  enum Kind { kRun, kHelp, kUsageError };
  Kind kind = kUsageError;
  // kHelp: the help text (for stdout); kUsageError: the error, saying what
  // to do next (for stderr).
  std::string text;
  Invocation invocation;  // kRun
};

// Parses the arguments after argv[0].
ParseResult Parse(const std::vector<std::string>& args);

// The text of `txadmin --help`.
std::string MainHelp();

}  // namespace txc::admin
