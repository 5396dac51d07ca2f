#include "tools/admin/report.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "common/txid.h"

namespace txc::admin {

namespace {

std::string ProtocolName(proto::Protocol::type p) {
  switch (p) {
    case proto::Protocol::TWO_PC: return "2pc";
    case proto::Protocol::THREE_PC: return "3pc";
  }
  return "?";
}

// Left-aligned columns, each as wide as its widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      if (width.size() < row.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

// ------------------------------------------------------------------ status

StatusReport BuildStatus(const std::vector<ReplicaAnswer>& answers) {
  StatusReport r;
  // The newest epoch's view of who leads; at equal epochs a replica that
  // names itself (the leader's own answer) is preferred.
  const proto::StatusResponse* best = nullptr;
  for (const auto& a : answers) {
    if (!a.status) continue;
    const proto::StatusResponse& v = *a.status;
    r.epoch = std::max(r.epoch, v.epoch);
    if (v.leader_id == 0) continue;
    if (best == nullptr || v.epoch > best->epoch ||
        (v.epoch == best->epoch && v.leader_id == v.replica_id && best->leader_id != best->replica_id)) {
      best = &v;
    }
  }
  if (best != nullptr) {
    r.leader_id = best->leader_id;
    r.leader_address = best->leader_address;
    r.epoch = best->epoch;
  }
  // Addresses -> ids, from any answering replica's list of its group.
  auto id_of = [&](const std::string& address) {
    for (const auto& a : answers) {
      if (!a.status) continue;
      for (const auto& ri : a.status->replicas) {
        if (ri.address == address) return ri.id;
      }
    }
    return 0;
  };
  const proto::StatusResponse* leader_view = nullptr;
  for (const auto& a : answers) {
    if (a.status && r.leader_id != 0 && a.status->replica_id == r.leader_id) {
      leader_view = &*a.status;
    }
  }
  r.leader_reachable = leader_view != nullptr;
  if (leader_view != nullptr) {
    r.reference_applied = leader_view->applied_index;
  } else {
    for (const auto& a : answers) {
      if (a.status) r.reference_applied = std::max(r.reference_applied, a.status->applied_index);
    }
  }
  for (const auto& a : answers) {
    StatusReport::Replica x;
    x.address = a.address;
    x.reachable = a.status.has_value();
    if (x.reachable) {
      const proto::StatusResponse& v = *a.status;
      ++r.reachable;
      x.id = v.replica_id;
      x.status = v;
      x.lag = std::max<int64_t>(0, r.reference_applied - v.applied_index);
      if (v.replica_id == r.leader_id) {
        x.role = "leader";
      } else if (v.leader_id == v.replica_id && v.leader_id != 0) {
        x.role = "stale-leader";  // leads an older epoch than the one named above
      } else {
        x.role = "follower";
      }
      if (v.storage_failed) r.storage_failed.push_back(v.replica_id);
    } else {
      x.id = id_of(a.address);
      x.error = a.error;
      if (x.id == 0 && !r.leader_address.empty() && a.address == r.leader_address) x.id = r.leader_id;
    }
    r.replicas.push_back(std::move(x));
  }
  return r;
}

Json StatusJson(const StatusReport& r) {
  Json j;
  j["leader"] = r.leader_id != 0 ? Json(r.leader_id) : Json(nullptr);
  j["leader_address"] = r.leader_id != 0 ? Json(r.leader_address) : Json(nullptr);
  j["leader_reachable"] = r.leader_reachable;
  j["epoch"] = r.epoch;
  Json replicas = Json::array();
  Json unreachable = Json::array();
  for (const auto& x : r.replicas) {
    if (!x.reachable) {
      Json u;
      u["address"] = x.address;
      u["id"] = x.id != 0 ? Json(x.id) : Json(nullptr);
      u["leader"] = x.id != 0 && x.id == r.leader_id;
      u["error"] = x.error;
      unreachable.push_back(std::move(u));
      continue;
    }
    const proto::StatusResponse& v = *x.status;
    Json o;
    o["id"] = v.replica_id;
    o["address"] = x.address;
    o["role"] = x.role;
    o["leader_id"] = v.leader_id;
    o["epoch"] = v.epoch;
    o["commit_index"] = v.commit_index;
    o["applied_index"] = v.applied_index;
    o["lag"] = x.lag;
    o["active_txns"] = v.active_txns;
    o["decided_txns"] = v.decided_txns;
    o["storage_failed"] = v.storage_failed;
    replicas.push_back(std::move(o));
  }
  // A leader outside the --coordinator list that does not answer either.
  if (r.leader_id != 0 && !r.leader_reachable) {
    bool listed = false;
    for (const auto& u : unreachable) listed = listed || u["leader"].get<bool>();
    if (!listed) {
      Json u;
      u["address"] = r.leader_address;
      u["id"] = r.leader_id;
      u["leader"] = true;
      u["error"] = "not in --coordinator; the answering replicas name it the leader";
      unreachable.push_back(std::move(u));
    }
  }
  j["replicas"] = std::move(replicas);
  j["unreachable"] = std::move(unreachable);
  j["storage_failed"] = r.storage_failed;
  return j;
}

std::string StatusTable(const StatusReport& r) {
  std::ostringstream out;
  if (r.leader_id != 0) {
    out << "leader: " << r.leader_id << " (" << r.leader_address
        << (r.leader_reachable ? "" : ", UNREACHABLE") << ")   epoch: " << r.epoch << "\n";
  } else {
    out << "leader: (none known)   epoch: " << r.epoch << "\n";
  }
  Table t({"id", "address", "role", "epoch", "commit", "applied", "lag", "active", "decided", "storage"});
  for (const auto& x : r.replicas) {
    std::string id = x.id != 0 ? Str(x.id) : "?";
    if (!x.reachable) {
      t.Add({id, x.address, x.id != 0 && x.id == r.leader_id ? "leader" : "?", "-", "-", "-", "-",
             "-", "-", "UNREACHABLE"});
      continue;
    }
    const proto::StatusResponse& v = *x.status;
    t.Add({id, x.address, x.role, Str(v.epoch), Str(v.commit_index), Str(v.applied_index),
           Str(x.lag), Str(v.active_txns), Str(v.decided_txns), v.storage_failed ? "FAILED" : "ok"});
  }
  out << t.Render();
  size_t down = r.replicas.size() - r.reachable;
  if (r.leader_id != 0 && !r.leader_reachable) {
    out << "the leader (replica " << r.leader_id << " at " << r.leader_address
        << ") does not answer: the group elects another within an election timeout; if it "
           "stays, start that replica or check its address and the network\n";
  } else if (r.leader_id == 0) {
    out << "no replica names a leader: a majority must run and reach each other; start the "
           "missing replicas\n";
  }
  if (down > 0) {
    out << down << " of " << r.replicas.size() << " replicas unreachable:";
    for (const auto& x : r.replicas) {
      if (!x.reachable) out << "\n  " << x.address << ": " << x.error;
    }
    out << "\n  (check that txcoord runs there and that --coordinator lists its --listen address)\n";
  }
  for (int id : r.storage_failed) {
    out << "replica " << id << ": STORAGE FAILED, its log refuses writes: fix the disk, then "
           "restart it (docs/operations.md)\n";
  }
  return out.str();
}

// ------------------------------------------------------------ transactions

Json ParticipantsJson(const std::vector<proto::Participant>& ps) {
  Json a = Json::array();
  for (const auto& p : ps) {
    Json o;
    o["resource"] = p.resource;
    o["address"] = p.address;
    if (p.__isset.incarnation) o["incarnation"] = p.incarnation;
    a.push_back(std::move(o));
  }
  return a;
}

std::string ParticipantsText(const std::vector<proto::Participant>& ps) {
  std::string s;
  for (const auto& p : ps) s += (s.empty() ? "" : ",") + p.resource + "@" + p.address;
  return s.empty() ? "-" : s;
}

Json TxnJson(const proto::TxnInfo& t) {
  Json o;
  o["txid"] = ToString(t.txid);
  o["state"] = t.state;
  o["outcome"] = OutcomeName(t.outcome);
  o["in_doubt"] = t.in_doubt;
  o["age_ms"] = t.age_ms;
  o["protocol"] = ProtocolName(t.protocol);
  o["participants"] = ParticipantsJson(t.participants);
  o["acked"] = t.acked;
  o["hazards"] = t.__isset.hazards ? Json(t.hazards) : Json::array();
  o["stuck"] = t.__isset.stuck && t.stuck;
  if (t.__isset.decided_age_ms) o["decided_age_ms"] = t.decided_age_ms;
  Json progress = Json::array();
  if (t.__isset.progress) {
    for (const auto& p : t.progress) {
      Json x;
      x["resource"] = p.resource;
      x["vote"] = p.__isset.vote ? Json(VoteName(p.vote)) : Json(nullptr);
      x["acked"] = p.acked;
      x["refused"] = p.refused;
      x["attempts"] = p.attempts;
      x["last_error"] = p.__isset.last_error ? Json(p.last_error) : Json(nullptr);
      progress.push_back(std::move(x));
    }
  }
  o["progress"] = std::move(progress);
  Json log = Json::array();
  if (t.__isset.log) {
    for (const auto& l : t.log) {
      Json x;
      x["command"] = l.command;
      x["index"] = l.index;
      x["age_ms"] = l.__isset.age_ms ? Json(l.age_ms) : Json(nullptr);
      if (!l.reason.empty()) x["reason"] = l.reason;
      if (!l.who.empty()) x["who"] = l.who;
      log.push_back(std::move(x));
    }
  }
  o["log"] = std::move(log);
  return o;
}

Json TxnsJson(const std::vector<proto::TxnInfo>& txns) {
  Json a = Json::array();
  for (const auto& t : txns) a.push_back(TxnJson(t));
  return a;
}

std::string TxnsTable(const std::vector<proto::TxnInfo>& txns) {
  Table t({"txid", "state", "outcome", "in-doubt", "stuck", "age_ms", "participants"});
  for (const auto& x : txns) {
    t.Add({ToString(x.txid), x.state, OutcomeName(x.outcome), x.in_doubt ? "yes" : "no",
           x.__isset.stuck && x.stuck ? "STUCK" : "-", Str(x.age_ms), ParticipantsText(x.participants)});
  }
  return t.Render() + "(" + std::to_string(txns.size()) + " transactions)\n";
}

Json TxnShowJson(const std::string& txid, const std::optional<proto::TxnInfo>& info,
                 proto::Outcome::type outcome) {
  Json o;
  if (info) {
    o = TxnJson(*info);
  } else {
    o["txid"] = txid;
    o["state"] = "ended";
  }
  o["group_outcome"] = OutcomeName(outcome);
  o["driven_by_leader"] = info.has_value();
  return o;
}

std::string TxnShowText(const std::string& txid, const std::optional<proto::TxnInfo>& info,
                        proto::Outcome::type outcome) {
  std::ostringstream out;
  out << "txid:          " << txid << "\n";
  out << "group outcome: " << OutcomeName(outcome) << "\n";
  if (!info) {
    out << "state:         ended (the leader no longer drives it";
    if (outcome == proto::Outcome::FORGOTTEN) out << "; ended so long ago that only 'it may have committed' is known";
    out << ")\n";
    return out.str();
  }
  out << "state:         " << info->state << (info->in_doubt ? " (in doubt)" : "") << "\n";
  out << "protocol:      " << ProtocolName(info->protocol) << "\n";
  out << "age:           " << info->age_ms << " ms\n";
  if (info->__isset.decided_age_ms) out << "decided:       " << info->decided_age_ms << " ms ago\n";
  if (info->__isset.stuck && info->stuck) {
    out << "STUCK:         the decision has not reached every participant; delivery goes on "
           "(txadmin txn retry " << txid << " retries now)\n";
  }
  out << "participants:\n";
  for (size_t i = 0; i < info->participants.size(); ++i) {
    const auto& p = info->participants[i];
    bool acked = std::find(info->acked.begin(), info->acked.end(), p.resource) != info->acked.end();
    out << "  " << p.resource << " at " << p.address << (acked ? "  acknowledged" : "  not acknowledged");
    if (info->__isset.progress && i < info->progress.size()) {
      const auto& g = info->progress[i];
      if (g.__isset.vote) out << "  vote " << VoteName(g.vote);
      if (g.attempts > 0) out << "  sent " << g.attempts << "x";
      if (g.refused) out << "  REFUSED";
      if (g.__isset.last_error) out << "\n      last error: " << g.last_error;
    }
    out << "\n";
  }
  if (info->__isset.log && !info->log.empty()) {
    out << "log:\n";
    for (const auto& l : info->log) {
      out << "  " << (l.index > 0 ? "slot " + std::to_string(l.index) : std::string("slot ?")) << "  "
          << l.command
          << (l.__isset.age_ms ? "  " + std::to_string(l.age_ms) + " ms ago"
                               : std::string("  before this leader took over"));
      if (!l.who.empty()) out << "  by " << l.who;
      if (!l.reason.empty()) out << "  (" << l.reason << ")";
      out << "\n";
    }
  }
  if (info->__isset.hazards) {
    for (const auto& h : info->hazards) out << "HAZARD: " << h << "\n";
  }
  return out.str();
}

// ----------------------------------------------------------------- branches

BranchRow ToRow(const proto::BranchInfo& b) {
  BranchRow r;
  r.txid = ToString(b.txid);
  r.resource = b.resource;
  r.age_ms = b.age_ms;
  size_t paren = b.state.find(" (");
  if (paren != std::string::npos && b.state.back() == ')') {
    r.state = b.state.substr(0, paren);
    r.detail = b.state.substr(paren + 2, b.state.size() - paren - 3);
  } else {
    r.state = b.state;
  }
  if (b.__isset.heuristic_outcome) {
    r.heuristic = OutcomeName(b.heuristic_outcome);
    r.reason = b.heuristic_reason;
    r.who = b.heuristic_who;
    r.at_ms = b.__isset.heuristic_at_ms ? b.heuristic_at_ms : 0;
    if (b.__isset.group_outcome) {
      r.group_outcome = OutcomeName(b.group_outcome);
      r.agreement = b.group_outcome == b.heuristic_outcome ? "agreed" : "hazard";
    } else {
      r.agreement = "unknown";
    }
  }
  return r;
}

bool InDoubt(const BranchRow& b) { return b.state == "prepared" || b.state == "precommitted"; }
bool Heuristic(const BranchRow& b) { return !b.heuristic.empty(); }

Json BranchesJson(const std::vector<BranchRow>& rows) {
  Json a = Json::array();
  for (const auto& b : rows) {
    Json o;
    o["txid"] = b.txid;
    o["resource"] = b.resource;
    o["state"] = b.state;
    o["age_ms"] = b.age_ms;
    o["in_doubt"] = InDoubt(b);
    if (!b.detail.empty()) o["detail"] = b.detail;
    if (Heuristic(b)) {
      Json h;
      h["outcome"] = b.heuristic;
      h["reason"] = b.reason;
      h["who"] = b.who;
      if (b.at_ms > 0) h["at"] = IsoTime(b.at_ms);
      h["group_outcome"] = b.group_outcome.empty() ? Json() : Json(b.group_outcome);
      h["agreement"] = b.agreement;
      o["heuristic"] = std::move(h);
    }
    a.push_back(std::move(o));
  }
  return a;
}

std::string BranchesTable(const std::vector<BranchRow>& rows) {
  Table t({"txid", "resource", "state", "age_ms", "detail"});
  for (const auto& b : rows) {
    std::string detail = b.detail;
    if (Heuristic(b)) {
      detail += std::string(detail.empty() ? "" : "; ") + "heuristic " + b.heuristic + " by " +
                b.who + " (" + b.reason + ")" + (b.at_ms > 0 ? " at " + IsoTime(b.at_ms) : "") +
                "; group: " + (b.group_outcome.empty() ? "not heard yet" : b.group_outcome) +
                " -> " + b.agreement;
    }
    t.Add({b.txid, b.resource, b.state, Str(b.age_ms), detail});
  }
  return t.Render() + "(" + std::to_string(rows.size()) + " branches)\n";
}

std::string IsoTime(int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return buf;
}

}  // namespace txc::admin
