// Fuzz target: the participant's WAL records as an agent reads them back at
// recovery (participant/sqlite_branch_log.cc; the SQLite and the queue
// resources share that branch log, and the XA resources its PreparedRecord):
//   mode 0, txc_branches.participants: DecodeParticipants (PreparedRecord or
//     the legacy layout);
//   mode 1, txc_changes.keys: DecodeKeys (ChangeKeysRecord or the legacy
//     layout), then each lock key printed as a lock conflict message does
//     (SqliteChanges::Describe, over an in-memory database with a table);
//   mode 2, a proto::PreparedRecord as the XA resources and txadmin read it.
// What decodes must encode to a record that decodes to the same values.
//
// Input: one byte that picks the mode, then the column's bytes.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "participant/sqlite_branch_log.h"
#include "participant/sqlite_changes.h"
#include "tests/fuzz/fuzz_util.h"
#include "wal/sqlite.h"

namespace {

namespace internal = txc::participant::internal;

// One database and capture for the whole run: Describe only reads the
// schema, to name a primary key's columns.
internal::SqliteChanges* Changes() {
  static std::unique_ptr<txc::wal::Db> db = [] {
    auto opened = txc::wal::Db::Open(":memory:");
    FUZZ_CHECK(opened.ok(), "open an in-memory database");
    auto d = std::move(*opened);
    FUZZ_CHECK(d->Exec("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER);"
                       "CREATE TABLE pairs(a TEXT, b BLOB, c REAL, PRIMARY KEY(a, b, c));")
                   .ok(),
               "create tables");
    return d;
  }();
  static std::unique_ptr<internal::SqliteChanges> changes = [] {
    auto c = std::make_unique<internal::SqliteChanges>("bank", db.get(), 0, [] { return txc::Micros{0}; });
    FUZZ_CHECK(c->Init().ok(), "init the change capture");
    return c;
  }();
  return changes.get();
}

void Participants(std::string_view in) {
  std::vector<txc::proto::Participant> ps;
  if (!internal::DecodeParticipants(in, &ps)) return;
  txc::proto::PreparedRecord r;
  r.participants = ps;
  txc::fuzz::CheckRoundTrip(r, "PreparedRecord");
  // The current layout of what was read decodes to the same participants.
  std::vector<txc::proto::Participant> again;
  FUZZ_CHECK(internal::DecodeParticipants(txc::codec::Encode(r), &again), "re-read participants");
  FUZZ_CHECK(again.size() == ps.size(), "same participant count");
  for (size_t i = 0; i < ps.size(); ++i) {
    FUZZ_CHECK(again[i].resource == ps[i].resource && again[i].address == ps[i].address,
               "same participants");
  }
}

void Keys(std::string_view in) {
  std::vector<std::string> keys;
  if (!internal::DecodeKeys(in, &keys)) return;
  txc::proto::ChangeKeysRecord r;
  r.keys = keys;
  txc::fuzz::CheckRoundTrip(r, "ChangeKeysRecord");
  std::vector<std::string> again;
  FUZZ_CHECK(internal::DecodeKeys(txc::codec::Encode(r), &again) && again == keys, "re-read keys");
  for (size_t i = 0; i < keys.size() && i < 16; ++i) (void)Changes()->Describe(keys[i]);
}

// A decode must not depend on earlier ones (the codec reuses one buffer and
// protocol per thread): a fixed valid record decodes after every input. The
// input before a failure is saved, since it is the one that left state behind.
void CheckCodecState(std::string_view current) {
  static std::string previous;
  txc::proto::ChangeKeysRecord r;
  const std::string empty("\x0f\x00\x01\x0b\x00\x00\x00\x00\x00", 9);
  if (!txc::codec::Decode(empty, &r)) {
    std::FILE* f = std::fopen("codec-state-culprit", "wb");
    if (f != nullptr) {
      std::fwrite(previous.data(), 1, previous.size(), f);
      std::fclose(f);
    }
    FUZZ_CHECK(false, "an earlier input left the codec unable to decode a valid record");
  }
  previous.assign(current);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckCodecState(std::string_view(reinterpret_cast<const char*>(data), size));
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      Participants(in);
      break;
    case 1:
      Keys(in);
      break;
    case 2: {
      txc::proto::PreparedRecord r;
      txc::fuzz::DecodeAndCheck(in, &r, "PreparedRecord");
      break;
    }
  }
  return 0;
}
