// Test-only crash points in the shells (never in the cores): when the
// environment variable TXC_CRASH_AT names a point, reaching it ends the
// process at once with _exit(137), as kill -9 would, so integration tests can
// crash a real process right after a given durable step.
#pragma once

namespace txc {

// Ends the process if TXC_CRASH_AT == name. Cheap when unset.
void CrashPoint(const char* name);

}  // namespace txc
