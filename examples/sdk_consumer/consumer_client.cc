// consumer_client: the client side of the example, built against an
// installed txcoord. One transaction over consumer_agent's two resources
// (an order row in the SQLite resource "shop", a counter in the custom
// resource "counters") commits, another rolls back, and each time it reads
// the data back and checks it.
//
//   consumer_client --coordinator 127.0.0.1:7000 --agent 127.0.0.1:7300
//
// Prints RESULT apples_sold=N orders=N and exits 0 when every check held;
// exits 1 on the first one that did not (or on an error).
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "client/client.h"

namespace {

// Stops the program on an error: this is an example, and a test.
void Check(const txc::Status& s, const std::string& what) {
  if (s.ok()) return;
  std::cerr << "consumer_client: " << what << ": " << s.ToString() << std::endl;
  std::exit(1);
}

struct Totals {
  int64_t apples_sold = 0;  // the counter
  int64_t orders = 0;       // rows in shop's orders table
  bool operator==(const Totals&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Totals& t) {
  return out << "apples_sold=" << t.apples_sold << " orders=" << t.orders;
}

// Reads both resources in one transaction (it only reads: both branches vote
// READ_ONLY and the commit has nothing to write).
txc::Result<Totals> Read(txc::Client& client) {
  auto tx = client.Begin();
  if (!tx.ok()) return tx.status();
  auto sold = tx->Execute("counters", txc::Sql("GET", {txc::Text("apples_sold")}));
  if (!sold.ok()) return sold.status();
  auto orders = tx->Execute("shop", txc::Sql("SELECT count(*) FROM orders"));
  if (!orders.ok()) return orders.status();
  TXC_RETURN_IF_ERROR(tx->Commit());
  return Totals{sold->rows.at(0).values.at(0).i, orders->rows.at(0).values.at(0).i};
}

// Commit and Rollback answer once the outcome is decided; each agent applies
// it right after, in the background. The counter's GET waits for the key's
// lock, but SQLite reads take no locks and may still see a rolled-back row
// for a moment: so read until the data is as expected, for up to 10 s.
void Expect(txc::Client& client, const Totals& want, const std::string& after) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    auto got = Read(client);
    if (got.ok() && *got == want) return;
    if (std::chrono::steady_clock::now() > deadline) {
      Check(got.status(), "reading back after " + after);
      std::cerr << "consumer_client: after " << after << " read " << *got << ", want " << want
                << std::endl;
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string coordinator, agent;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--coordinator") coordinator = argv[i + 1];
    if (flag == "--agent") agent = argv[i + 1];
  }
  if (coordinator.empty() || agent.empty()) {
    std::cerr << "usage: consumer_client --coordinator HOST:PORT --agent HOST:PORT" << std::endl;
    return 2;
  }

  // Both resources live in the one consumer_agent.
  auto client = txc::Client::Connect(
      {.coordinators = {coordinator}, .agents = {{"counters", agent}, {"shop", agent}}});
  Check(client.status(), "connecting");
  txc::Client& c = **client;

  // The table, once (DDL is not undone: keep it out of the transactions that matter).
  auto setup = c.Begin();
  Check(setup.status(), "begin");
  Check(setup->Execute("shop", txc::Sql("CREATE TABLE IF NOT EXISTS orders("
                                        "id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL)"))
            .status(),
        "creating the orders table");
  Check(setup->Commit(), "committing the table");

  auto before = Read(c);
  Check(before.status(), "reading");
  std::cout << "before: " << *before << std::endl;

  // An order of 3 apples: a row in shop and +3 on the counter, atomically.
  auto tx = c.Begin();
  Check(tx.status(), "begin");
  Check(tx->Execute("shop", txc::Sql("INSERT INTO orders(item, qty) VALUES (?, ?)",
                                     {txc::Text("apple"), txc::Int(3)}))
            .status(),
        "inserting the order");
  Check(tx->Execute("counters", txc::Sql("ADD", {txc::Text("apples_sold"), txc::Int(3)})).status(),
        "counting the apples");
  Check(tx->Commit(), "committing the order");
  Totals committed{before->apples_sold + 3, before->orders + 1};
  Expect(c, committed, "the commit");
  std::cout << "committed: " << committed << std::endl;

  // The same work, rolled back: neither resource keeps any of it.
  auto undo = c.Begin();
  Check(undo.status(), "begin");
  Check(undo->Execute("shop", txc::Sql("INSERT INTO orders(item, qty) VALUES (?, ?)",
                                       {txc::Text("apple"), txc::Int(100)}))
            .status(),
        "inserting the order to roll back");
  Check(undo->Execute("counters", txc::Sql("ADD", {txc::Text("apples_sold"), txc::Int(100)})).status(),
        "counting the apples to roll back");
  Check(undo->Rollback(), "rolling back");
  Expect(c, committed, "the rollback");
  std::cout << "rolled back: " << committed << std::endl;

  std::cout << "RESULT " << committed << std::endl;
  return 0;
}
