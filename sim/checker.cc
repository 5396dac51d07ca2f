#include "sim/checker.h"

#include <algorithm>

namespace txc::sim {

namespace {
constexpr int kMaxPrinted = 3;     // violations printed per seed (all are counted)
constexpr size_t kHistory = 25;    // events shown per violation
}  // namespace

Checker::Checker(World* world, std::string repro, std::ostream* out)
    : world_(world), repro_(std::move(repro)), out_(out) {}

void Checker::SetBank(std::function<void(const BankVisitor&)> each, int64_t total,
                      std::map<std::string, int64_t> members) {
  bank_each_ = std::move(each);
  bank_total_ = total;
  members_ = std::move(members);
}

void Checker::Violation(const char* invariant, const TxId* txid, const std::string& what) {
  ++violations_;
  std::string head = std::string("violation: ") + invariant + " seed=" +
                     std::to_string(world_->seed()) + " t=" + FormatTime(world_->now());
  if (txid != nullptr) head += " txid=" + ToString(*txid);
  head += ": " + what;
  world_->Log(-1, txid, "VIOLATION " + std::string(invariant) + ": " + what);
  if (first_.empty()) first_ = head;
  if (out_ == nullptr || printed_ >= kMaxPrinted) return;
  ++printed_;
  *out_ << head << "\n  replay: " << repro_ << "\n";
  if (txid != nullptr) {
    *out_ << "  last events of txid " << ToString(*txid) << ":\n";
    for (const std::string& line : world_->History(*txid, kHistory)) *out_ << "    " << line << "\n";
  } else {
    *out_ << "  last events:\n";
    for (const std::string& line : world_->Tail(kHistory)) *out_ << "    " << line << "\n";
  }
  out_->flush();
}

// ----------------------------------------------------------------- atomicity

void Checker::OnBranchCommitted(int node, const std::string& resource, const TxId& txid,
                                bool wrote) {
  if (observer_) observer_(node, resource, txid, "COMMITTED");
  world_->Log(node, &txid, "branch COMMITTED at " + resource + (wrote ? "" : " (read-only)"));
  auto doomed = interrupted_.find(txid);
  if (doomed != interrupted_.end() && doomed->second.count(resource)) {
    Violation("atomicity", &txid,
              "committed at " + resource +
                  " although a statement of its branch there was interrupted past its deadline "
                  "(the branch must vote NO)");
  }
  if (!wrote) return;
  Outcomes& o = outcomes_[txid];
  o.committed.insert(resource);
  committed_.insert(txid);
  if (!o.aborted.empty()) {
    Violation("atomicity", &txid,
              "committed at " + resource + " but rolled back at " + *o.aborted.begin());
  }
  if (told_aborted_.count(txid)) {
    Violation("atomicity", &txid,
              "committed at " + resource + " although its client was told it ABORTED");
  }
  if (!commit_requested_.count(txid)) {
    Violation("atomicity", &txid,
              "committed at " + resource + " although no client ever asked to commit it");
  }
  CheckBankSum("after a commit", &txid);
}

void Checker::OnBranchAborted(int node, const std::string& resource, const TxId& txid,
                              bool had_changes) {
  if (observer_) observer_(node, resource, txid, "ABORTED");
  world_->Log(node, &txid,
              "branch ABORTED at " + resource + (had_changes ? " (undo applied)" : " (tombstone)"));
  if (!had_changes) return;
  if (prepared_.count({node, txid, resource}) && !abort_heard_.count({node, txid})) {
    Violation("atomicity", &txid,
              "rolled back at " + resource + " on " + world_->NodeName(node) +
                  " after it voted YES, but no ABORTED decision reached it since (a rollback of "
                  "a PREPARED branch on a word that was no decision)");
  }
  if (precommitted_.count(txid)) {
    Violation("atomicity", &txid,
              "rolled back at " + resource + " on " + world_->NodeName(node) +
                  " although a participant reached PRECOMMITTED (3PC: PRE_COMMIT leaves only once "
                  "the group chose PRECOMMIT, which decides a commit)");
  }
  Outcomes& o = outcomes_[txid];
  o.aborted.insert(resource);
  if (!o.committed.empty()) {
    Violation("atomicity", &txid,
              "rolled back at " + resource + " but committed at " + *o.committed.begin());
  }
  if (told_committed_.count(txid)) {
    Violation("durability", &txid,
              "rolled back at " + resource + " although its client was told it COMMITTED");
  }
  CheckBankSum("after a rollback", &txid);
}

void Checker::OnBranchPrepared(int node, const std::string& resource, const TxId& txid) {
  if (observer_) observer_(node, resource, txid, "PREPARED");
  prepared_.insert({node, txid, resource});
}

void Checker::OnBranchPreCommitted(int node, const std::string& resource, const TxId& txid) {
  if (observer_) observer_(node, resource, txid, "PRECOMMITTED");
  world_->Log(node, &txid, "branch PRECOMMITTED at " + resource);
  precommitted_.insert(txid);
  if (auto it = outcomes_.find(txid); it != outcomes_.end() && !it->second.aborted.empty()) {
    Violation("atomicity", &txid,
              "PRECOMMITTED at " + resource + " although rolled back at " +
                  *it->second.aborted.begin() + " (3PC: PRECOMMIT decides a commit)");
  }
}

void Checker::OnAbortDecisionHeard(int node, const TxId& txid) { abort_heard_.insert({node, txid}); }

void Checker::OnAbortedOutcomeHeard(int node, const TxId& txid) {
  // Only a PREPARED branch acts on it as a decision; an ACTIVE one merely
  // learns its transaction is gone, which says nothing about a later vote.
  auto it = prepared_.lower_bound({node, txid, std::string()});
  if (it != prepared_.end() && std::get<0>(*it) == node && std::get<1>(*it) == txid) {
    abort_heard_.insert({node, txid});
  }
}

void Checker::OnCommitRequested(const TxId& txid) { commit_requested_.insert(txid); }

void Checker::OnStatementInterrupted(const std::string& resource, const TxId& txid) {
  interrupted_[txid].insert(resource);
  if (told_committed_.count(txid)) {
    Violation("atomicity", &txid,
              "a statement at " + resource + " was interrupted after its client was told COMMITTED");
  }
}

void Checker::OnToldCommitted(const TxId& txid, const std::vector<std::string>& resources) {
  told_committed_[txid] = resources;
  auto doomed = interrupted_.find(txid);
  if (doomed != interrupted_.end()) {
    Violation("atomicity", &txid,
              "its client was told COMMITTED although a statement of its branch at " +
                  *doomed->second.begin() + " was interrupted past its deadline");
  }
  if (told_aborted_.count(txid)) {
    Violation("atomicity", &txid, "its client was told both COMMITTED and ABORTED");
  }
}

void Checker::OnHeuristicHazard(const TxId& txid, const std::string& what) {
  ++heuristic_hazards_;
  Violation("atomicity", &txid, "the coordinator reports a heuristic hazard: " + what);
}

void Checker::OnToldAborted(const TxId& txid) {
  told_aborted_.insert(txid);
  if (told_committed_.count(txid)) {
    Violation("atomicity", &txid, "its client was told both COMMITTED and ABORTED");
  }
  auto it = outcomes_.find(txid);
  if (it != outcomes_.end() && !it->second.committed.empty()) {
    Violation("atomicity", &txid,
              "its client was told ABORTED but it committed at " + *it->second.committed.begin());
  }
}

void Checker::OnLateAnswer(const TxId& txid, proto::Outcome::type outcome,
                           const std::vector<std::string>& wrote) {
  if (outcome == proto::Outcome::ABORTED) return OnToldAborted(txid);
  if (outcome != proto::Outcome::COMMITTED) return;
  if (!commit_requested_.count(txid)) {
    Violation("atomicity", &txid, "a late query was answered COMMITTED, but no client asked to commit it");
  }
  auto it = outcomes_.find(txid);
  if (it != outcomes_.end() && !it->second.aborted.empty()) {
    Violation("atomicity", &txid,
              "a late query was answered COMMITTED, but it was rolled back at " +
                  *it->second.aborted.begin());
  }
  OnToldCommitted(txid, wrote);
}

// ------------------------------------------------------- agreement, validity

void Checker::OnProposed(const std::string& value) { proposed_.insert(value); }

void Checker::OnApplied(int replica, uint64_t slot, const std::string& value) {
  if (!proposed_.count(value)) {
    Violation("validity", nullptr,
              world_->NodeName(replica) + " applied a value at slot " + std::to_string(slot) +
                  " that no replica proposed");
  }
  uint64_t& through = applied_through_[replica];
  through = std::max(through, slot);
  auto [it, inserted] = slots_.emplace(slot, value);
  if (!inserted && it->second != value) {
    Violation("agreement", nullptr,
              world_->NodeName(replica) + " applied a different value at slot " +
                  std::to_string(slot) + " than was applied there before (a chosen slot changed)");
  }
}

void Checker::OnReplayed(int replica, uint64_t last_slot) {
  auto it = applied_through_.find(replica);
  if (it == applied_through_.end() || it->second <= last_slot) return;
  Violation("agreement", nullptr,
            world_->NodeName(replica) + " applied slots up to " + std::to_string(it->second) +
                " before it restarted, but its log now ends at slot " + std::to_string(last_slot));
}

void Checker::CheckImage(int replica, uint64_t slot, const std::string& image, const char* how) {
  uint64_t& through = applied_through_[replica];
  through = std::max(through, slot);
  auto [it, inserted] = images_.emplace(slot, image);
  if (!inserted && it->second != image) {
    Violation("agreement", nullptr,
              world_->NodeName(replica) + " " + how + " a snapshot at slot " + std::to_string(slot) +
                  " that differs from another image of that slot (the state machines diverged)");
  }
}

void Checker::OnSnapshot(int replica, uint64_t slot, const std::string& image) {
  CheckImage(replica, slot, image, "took");
}

void Checker::OnInstalled(int replica, uint64_t slot, const std::string& image) {
  CheckImage(replica, slot, image, "installed");
}

void Checker::OnRestored(int replica, uint64_t slot, const std::string& image) {
  CheckImage(replica, slot, image, "restored");
}

// ---------------------------------------------------------------------- bank

void Checker::CheckBankSum(const char* when, const TxId* txid) {
  if (!bank_each_) return;
  int64_t sum = 0;
  // A transaction committed at some resource: known here once that resource
  // reported it, or seen COMMITTED in a resource's state (which the SQLite
  // resource writes before it reports, once the commit is durable).
  std::set<TxId, TxIdLess> committed_now;
  struct Seen {
    std::string name;
    int64_t sum = 0, members = 0;
    std::vector<std::pair<TxId, int64_t>> open, open_members;  // (txid, delta)
  };
  std::vector<Seen> seen;
  bank_each_([&](const std::string& name, const BankImage& img) {
    Seen one;
    one.name = name;
    one.sum = img.Sum();
    one.members = static_cast<int64_t>(img.members.size());
    for (const TxId& t : img.open) {
      const BankBranch& b = img.branches.at(t);
      one.open.emplace_back(t, b.Delta());
      if (b.member_delta != 0) one.open_members.emplace_back(t, b.member_delta);
    }
    for (const auto& [t, b] : img.branches) {
      if (b.state == participant::BranchState::kCommitted) committed_now.insert(t);
    }
    seen.push_back(std::move(one));
  });
  // Work of a transaction that committed nowhere yet is not committed state.
  auto uncommitted = [&](const TxId& t) { return !committed_.count(t) && !committed_now.count(t); };
  for (const Seen& one : seen) {
    sum += one.sum;
    for (const auto& [t, delta] : one.open) {
      if (uncommitted(t)) sum -= delta;
    }
    auto expected = members_.find(one.name);
    if (expected == members_.end()) continue;
    int64_t members = one.members;
    for (const auto& [t, delta] : one.open_members) {
      if (uncommitted(t)) members -= delta;
    }
    if (members != expected->second) {
      Violation("bank", txid,
                one.name + " holds " + std::to_string(members) + " committed members, not " +
                    std::to_string(expected->second) + " (" + when + "): a rename lost or " +
                    "duplicated a row");
    }
  }
  if (sum != bank_total_) {
    Violation("bank", txid,
              "the committed sum of balances is " + std::to_string(sum) + ", not " +
                  std::to_string(bank_total_) + " (" + when + ")");
  }
}

void Checker::FinalChecks(const std::function<void(const BankVisitor&)>& durable_each) {
  // Durability: every commit a client heard of is COMMITTED at each resource
  // it wrote to, in that resource's durable image.
  // Copies: a visitor may hand out images it reads on the fly.
  std::map<std::string, BankImage> images;
  durable_each([&](const std::string& name, const BankImage& img) { images[name] = img; });
  for (const auto& [txid, resources] : told_committed_) {
    for (const std::string& r : resources) {
      auto it = images.find(r);
      if (it == images.end()) continue;
      auto b = it->second.branches.find(txid);
      if (b == it->second.branches.end() ||
          b->second.state != participant::BranchState::kCommitted) {
        std::string state = b == it->second.branches.end()
                                ? "no branch at all"
                                : participant::BranchStateName(b->second.state);
        Violation("durability", &txid,
                  "its client was told COMMITTED, but at " + r + " the branch is " + state);
        if (violations_ > 10) return;
      }
    }
  }
  // The bank at rest: the sum is the initial one, no balance is negative.
  images.clear();
  bank_each_([&](const std::string& name, const BankImage& img) { images[name] = img; });
  int64_t sum = 0;
  for (const auto& [name, img] : images) {
    sum += img.Sum();
    for (const auto& [id, bal] : img.accounts) {
      if (bal < 0) {
        Violation("bank", nullptr,
                  name + ".accounts id=" + std::to_string(id) + " has a negative balance " +
                      std::to_string(bal));
      }
    }
  }
  for (const auto& [name, img] : images) {
    auto expected = members_.find(name);
    if (expected != members_.end() && static_cast<int64_t>(img.members.size()) != expected->second) {
      Violation("bank", nullptr,
                "at rest " + name + " holds " + std::to_string(img.members.size()) +
                    " members, not " + std::to_string(expected->second));
    }
  }
  if (sum != bank_total_) {
    Violation("bank", nullptr,
              "at rest the balances sum to " + std::to_string(sum) + ", not " +
                  std::to_string(bank_total_));
  }
}

}  // namespace txc::sim
