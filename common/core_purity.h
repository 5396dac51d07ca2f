// Forced into every source of the txc_core library (CMakeLists.txt) with
// -include: the deterministic cores (DESIGN.md, "the one rule") may not use
// Asio, SQLite or spdlog. Each header of those declares one of these
// identifiers, so including it anywhere in a core is a compile error that
// names the identifier. Time, randomness and files come in as arguments.
// Sockets cannot be poisoned this way (Thrift's own header includes
// <netinet/in.h>); without Asio a core has no way to use them but the raw
// system calls, which review catches.
#pragma once
#pragma GCC poison asio spdlog sqlite3_open_v2 sqlite3_exec
