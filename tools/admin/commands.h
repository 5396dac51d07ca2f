// txadmin's commands: runs a parsed invocation against the group, an agent
// or a file, and prints its report. main() is this plus argument handling.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "tools/admin/cli.h"

namespace txc::admin {

using RunFn = int (*)(const Invocation& inv, std::ostream& out, std::ostream& err);
// Each command's implementation, by CommandSpec::name (cli.h lists the same
// names: a command exists in both or in neither).
const std::map<std::string, RunFn>& Runners();

// Runs `inv`; the report goes to `out`, errors (saying what to do next) to
// `err`. Returns the exit code (kExitOk, kExitError).
int Run(const Invocation& inv, std::ostream& out, std::ostream& err);

// Parses and runs: the whole of txadmin. `args` excludes argv[0].
int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace txc::admin
