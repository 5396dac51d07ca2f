// txconform: a conformance kit for participant agents. It drives any agent
// that serves the Agent service (protocol/txcoord.thrift) over the wire,
// acting as the coordinator and the client at once, through the protocol's
// hard cases: duplicate PREPARE and DECIDE, the empty rollback and the
// hanging branch it must prevent, a COMMIT for a branch that never prepared,
// branch state queries, a crash after a YES vote, concurrent writers of one
// row, malformed and oversized requests. docs/sdk.md, "Checking a participant agent" says what each
// case checks and why.
//
// Not thread-safe: one Run at a time (it starts its own io thread).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/time.h"

namespace txc::conform {

// The workload the cases run against the resource.
enum class Kind {
  kSql,    // a SQL resource: table txconform_kv(k, v), upserts that count
  kQueue,  // a queue resource: ENQUEUE / DEQUEUE / COUNT statements
};

struct Options {
  std::string agent;     // HOST:PORT of the agent under test
  std::string resource;  // the resource it hosts that the cases write
  Kind kind = Kind::kSql;
  // Run with /bin/sh -c to kill and restart the agent (case crash-after-yes);
  // empty: that case is skipped.
  std::string restart_cmd;
  // The deadline of every call, and the bound of every wait (a lock wait, the
  // restart command, the agent listening again). Default: 10 s.
  Micros timeout = 10 * kSeconds;
  // The epoch of every txid the kit makes. 0: chosen from the clock, far
  // above any real coordinator's epoch (see Run). Default: 0.
  int64_t epoch = 0;
  // Print every case's checks (the details line), not only a failed or
  // skipped case's. Default: false.
  bool verbose = false;
};

enum class Verdict { kPass, kFail, kSkip };

struct CaseResult {
  int number = 0;
  std::string name;
  std::string expected;
  std::string got;
  Verdict verdict = Verdict::kFail;
  std::string detail;  // why it failed or was skipped, in full
};

// Runs every case in order, printing the table to `out` as each case ends
// (one PASS, FAIL or SKIP line per case, details on indented lines that never
// contain the word the acceptance scripts count), then a summary line.
// Returns the results; an agent that cannot be set up (unreachable, the
// workload's table refused) yields one failed "setup" result.
std::vector<CaseResult> Run(const Options& options, std::ostream& out);

// The process exit code of a run: 0 when nothing failed, else 1.
int ExitCode(const std::vector<CaseResult>& results);

// `text` with every "pass" (any case) broken up, so that a message of the
// agent ("deadline passed") never counts as a verdict line.
std::string Scrub(const std::string& text);

}  // namespace txc::conform
