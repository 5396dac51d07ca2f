#!/usr/bin/python3
"""A txcoord participant agent in Python: the Agent service of
protocol/txcoord.thrift over one SQLite database, with the contract the C++
agent (participant/branch_core.cc) keeps.

    participant.py --listen 127.0.0.1:7201 --data DIR --coordinator 127.0.0.1:7000 --resource bank_py

Storage (DIR):
  NAME.db      the data: the tables the transactions' statements touch, and
               txc_applied (the txids committed, written in the same local
               transaction as the branch's changes)
  NAME.log.db  the branch log: one row per branch that reached PREPARED or an
               end (state, the statements it executed as JSON, the
               participants), and the incarnation counter

Concurrency: SQLite has one writer. A branch takes the database's write lock
(BEGIN IMMEDIATE on a connection of its own) at its first statement and keeps
it until it commits or rolls back, so branches run one after another: a
second branch waits up to --lock-timeout-ms and then gets LOCK_TIMEOUT naming
the holder (a one-shot PREPARE younger than the holder votes NO at once:
wait-die). Never a lost update; little concurrency (a demo's trade).

Durability points:
  PREPARE  the log row PREPARED with the statements, committed with
           synchronous=FULL, before the YES vote leaves
  COMMIT   the branch's data and its txc_applied row, committed together
           (synchronous=FULL), before the acknowledgement; the log row is
           marked COMMITTED afterwards
  ABORT    the log row ABORTED (a tombstone, also for a txid never seen here)
Recovery: a PREPARED row whose txid is not in txc_applied is redone (its
statements executed again, in a new local transaction that takes the write
lock first, so nothing else can have changed the data in between) and held in
doubt; the coordinator group is asked for its outcome at once and then every
1 to 5 s. A row in txc_applied is marked COMMITTED.

Choices where the C++ agent has others (docs/sdk.md, "Python"):
  - a branch that never wrote votes READ_ONLY and is released at once;
  - Decide(COMMITTED) for a txid with no branch here is refused (NOT_FOUND):
    this agent never forgets a branch (the log keeps every row), so "unknown"
    means it was never prepared here; txagent, which forgets, answers OK;
  - Resolve and Forget (heuristic decisions) are refused: not supported.
"""

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client as txc  # noqa: E402  (the generated code is loaded through it)

log = logging.getLogger("participant")

MAX_FRAME_BYTES = 16 << 20      # as protocol/rpc.h's ServerOptions
MAX_CONNECTIONS = 1024
MAX_IN_FLIGHT = 256             # requests being served at once
MAX_TIMEOUT_MS = 24 * 3600 * 1000
FINAL_RETENTION_S = 30.0        # finished branches kept in memory (the log keeps them longer)
MAX_STATEMENTS = 10000          # in one request (as protocol/validate.h's kMaxStatements)
MAX_CALL_SECONDS = 10.0         # the statements of one call, together (as txagent's SQLite resource)
RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ACTIVE, PREPARED, PRECOMMITTED = "active", "prepared", "precommitted"
COMMITTED, ABORTED = "committed", "aborted"
IN_DOUBT = (PREPARED, PRECOMMITTED)


def mono():
    return time.monotonic()


def wall_ms():
    return int(time.time() * 1000)


def tx(t):
    return "%d.%d" % t


def snippet(text, n=60):
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 3] + "..."


class Refused(Exception):
    """A request (or one statement) that cannot be served: `code` is a
    txc.T.Code name, `message` says why."""

    def __init__(self, code, message, refused=False):
        super().__init__(message)
        self.code = code
        self.message = message
        # A decision refused because the branch ended the other way here
        # (DecideResponse.refused: a heuristic hazard the coordinator reports).
        self.refused = refused


# ------------------------------------------------------------------ JSON of statements

def value_json(v):
    if v.i is not None:
        return {"i": v.i}
    if v.d is not None:
        return {"d": v.d}
    if v.s is not None:
        return {"s": v.s}
    if v.b is not None:
        return {"b": v.b.hex()}
    return {}


def value_py(j):
    if "i" in j:
        return j["i"]
    if "d" in j:
        return j["d"]
    if "s" in j:
        return j["s"]
    if "b" in j:
        return bytes.fromhex(j["b"])
    return None


def statement_json(st):
    return {"sql": st.sql, "params": [value_json(v) for v in (st.params or [])],
            "expect_rows": st.expect_rows}


def statement_of(j):
    return txc.T.Statement(sql=j["sql"], params=[txc.value(value_py(p)) for p in j["params"]],
                           expect_rows=j.get("expect_rows"))


def participant_json(p):
    return {"resource": p.resource, "address": p.address, "incarnation": p.incarnation}


# ------------------------------------------------------------------ the branch log

class BranchLog:
    """NAME.log.db: a row per branch that was prepared or ended, and the
    incarnation counter. Every write is its own transaction, committed with
    synchronous=FULL (WAL): on disk when put() returns. Thread-safe."""

    def __init__(self, path):
        self.mu = threading.Lock()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS txc_branches("
                        " epoch INTEGER NOT NULL, seq INTEGER NOT NULL, state TEXT NOT NULL,"
                        " wrote INTEGER NOT NULL, statements TEXT, participants TEXT,"
                        " protocol INTEGER, updated_ms INTEGER NOT NULL,"
                        " PRIMARY KEY(epoch, seq))")
        self.db.execute("CREATE TABLE IF NOT EXISTS txc_meta(key TEXT PRIMARY KEY, value INTEGER)")

    def bump_incarnation(self):
        with self.mu:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT value FROM txc_meta WHERE key='incarnation'").fetchone()
            n = (row[0] if row else 0) + 1
            self.db.execute("INSERT OR REPLACE INTO txc_meta VALUES ('incarnation', ?)", (n,))
            self.db.execute("COMMIT")
            return n

    def put(self, b, state):
        statements = None
        if state in IN_DOUBT:
            statements = json.dumps([[statement_json(s) for s in call] for call in b.calls])
        with self.mu:
            self.db.execute(
                "INSERT OR REPLACE INTO txc_branches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (b.txid[0], b.txid[1], state, int(b.wrote), statements,
                 json.dumps([participant_json(p) for p in b.participants]), b.protocol, wall_ms()))

    def get(self, txid):
        with self.mu:
            return self.db.execute("SELECT state, wrote, updated_ms FROM txc_branches "
                                   "WHERE epoch=? AND seq=?", txid).fetchone()

    def in_doubt(self):
        with self.mu:
            return self.db.execute(
                "SELECT epoch, seq, state, statements, participants, protocol FROM txc_branches "
                "WHERE state IN (?, ?) ORDER BY epoch, seq", IN_DOUBT).fetchall()

    def recent(self, since_ms):
        with self.mu:
            return self.db.execute("SELECT epoch, seq, state, wrote, updated_ms FROM txc_branches "
                                   "WHERE updated_ms >= ?", (since_ms,)).fetchall()


# ------------------------------------------------------------------ branches

class Guard:
    """The authorizer of a branch's connection: while a user statement is
    prepared, transaction control, ATTACH and PRAGMA writes are refused (the
    branch's transaction is the agent's), and so is touching txc_applied;
    DDL is noted (it writes, though it changes no rows)."""

    DDL = {sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TRIGGER,
           sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE,
           sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_ALTER_TABLE,
           sqlite3.SQLITE_REINDEX, sqlite3.SQLITE_ANALYZE}
    READ_PRAGMAS = {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
                    "foreign_key_list", "table_list"}

    def __init__(self):
        self.user = False
        self.denied = None
        self.ddl = False
        self.deadline = None  # the running call is interrupted past this (time.monotonic)
        self.timed_out = False

    def progress(self):
        """SQLite's progress handler: nonzero interrupts the statement."""
        if self.deadline is not None and mono() > self.deadline:
            self.timed_out = True
            return 1
        return 0

    def _deny(self, why):
        self.denied = why
        return sqlite3.SQLITE_DENY

    def __call__(self, action, arg1, arg2, db, trigger):
        if not self.user:
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            return self._deny("transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) belongs to "
                              "the agent: send only the work")
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return self._deny("ATTACH and DETACH are not allowed in a branch")
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in self.READ_PRAGMAS \
                and arg2 is not None:
            return self._deny("PRAGMA %s with a value is not allowed in a branch" % arg1)
        table = arg2 if action == sqlite3.SQLITE_ALTER_TABLE else arg1
        if (table or "").lower() == "txc_applied" and action in (
                sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
                sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_ALTER_TABLE):
            return self._deny("txc_applied is the agent's record of committed branches")
        if action in self.DDL:
            self.ddl = True
        return sqlite3.SQLITE_OK


class Branch:
    """One txid's branch here. Its fields are read and written with `lock`
    held (one operation at a time on a branch), except `cancel` (set by an
    ABORT that is about to wait for the lock) and `users` (under the agent's
    mutex)."""

    def __init__(self, txid):
        self.txid = txid            # (epoch, seq)
        self.state = None           # None: nothing here yet (or a refused first statement)
        self.wrote = False
        self.conn = None            # the data connection holding BEGIN IMMEDIATE
        self.guard = None
        self.calls = []             # the statements of every successful Execute: the redo
        self.participants = []
        self.protocol = 1
        self.doomed = None          # ACTIVE: why PREPARE must vote NO
        self.redo_error = None      # recovered PREPARED branch that could not be redone
        self.since = mono()
        self.active_deadline = 0.0
        self.next_query = 0.0
        self.query_backoff = 1.0
        self.cancel = False
        self.users = 0
        self.lock = threading.Lock()

    def state_name(self):
        if self.state is None:
            return "none"
        if self.state == COMMITTED and not self.wrote:
            return "read-only"
        return self.state


class Participant:
    """The agent: the Agent service's handler, the branches, recovery and the
    in-doubt queries. Thread-safe: requests are served on many threads."""

    def __init__(self, resource, data_dir, coordinators, lock_timeout=2.0, active_timeout=60.0,
                 in_doubt_after=2.0, query_max=2.0):
        self.resource = resource
        self.data_path = os.path.join(data_dir, resource + ".db")
        self.lock_timeout = lock_timeout
        self.active_timeout = active_timeout
        self.in_doubt_after = in_doubt_after
        self.query_max = query_max
        self.group = txc.CoordinatorGroup(coordinators, call_timeout=2.0)
        self.mu = threading.Lock()          # branches
        self.branches = {}
        self.writer_cv = threading.Condition()
        self.writer = None                  # the Branch holding the data's write lock
        self.storage_failed = None          # a failed durable write: refuse writes until restarted
        self.log = BranchLog(os.path.join(data_dir, resource + ".log.db"))
        self.incarnation = self.log.bump_incarnation()
        self._stop = threading.Event()

    # ---------------------------------------------------------- data connections

    def _open(self, b):
        conn = sqlite3.connect(self.data_path, isolation_level=None, check_same_thread=False,
                               timeout=5, cached_statements=0)
        conn.execute("PRAGMA synchronous=FULL")
        b.guard = Guard()
        conn.set_authorizer(b.guard)
        conn.set_progress_handler(b.guard.progress, 10000)
        conn.execute("BEGIN IMMEDIATE")
        b.conn = conn

    def _acquire_writer(self, b, wait_die):
        """Makes `b` the writer, waiting up to the lock timeout. Refused:
        ABORTED if an ABORT came meanwhile, CONFLICT (wait-die) or
        LOCK_TIMEOUT naming the holder."""
        deadline = mono() + self.lock_timeout
        with self.writer_cv:
            while self.writer is not None and self.writer is not b:
                holder = self.writer.txid
                if b.cancel:
                    raise Refused("ABORTED", "transaction %s was aborted while waiting for a lock"
                                  % tx(b.txid))
                if wait_die and holder < b.txid:
                    raise Refused("CONFLICT", "lock conflict on %s (the database's write lock) held "
                                  "by older transaction %s (wait-die)" % (self.resource, tx(holder)))
                left = deadline - mono()
                if left <= 0:
                    raise Refused("LOCK_TIMEOUT", "lock timeout after %d ms on %s (the database's "
                                  "write lock) held by txn %s"
                                  % (self.lock_timeout * 1000, self.resource, tx(holder)))
                self.writer_cv.wait(min(left, 0.05))
            self.writer = b
        try:
            self._open(b)
        except sqlite3.Error as e:
            self._release(b)
            raise Refused("UNAVAILABLE", "%s: cannot start a local transaction (another process "
                          "may hold the database): %s" % (self.resource, e))

    def _release(self, b):
        if b.conn is not None:
            try:
                if b.conn.in_transaction:
                    b.conn.execute("ROLLBACK")
            except sqlite3.Error as e:
                log.warning("rollback of txid=%s's local transaction: %s", tx(b.txid), e)
            b.conn.close()
            b.conn = None
        with self.writer_cv:
            if self.writer is b:
                self.writer = None
                self.writer_cv.notify_all()

    # ---------------------------------------------------------- statements

    def _run_call(self, b, statements):
        """Runs one Execute's statements in a savepoint: all applied, or none
        (the branch keeps what earlier calls did). Returns (results, wrote)."""
        conn = b.conn
        conn.execute("SAVEPOINT txc_call")
        results, wrote = [], False
        b.guard.deadline, b.guard.timed_out = mono() + MAX_CALL_SECONDS, False
        try:
            for i, st in enumerate(statements):
                rs, w = self._run_one(b, i, st)
                results.append(rs)
                wrote = wrote or w
        except Refused:
            b.guard.deadline = None
            if conn.in_transaction:
                conn.execute("ROLLBACK TO txc_call")
                conn.execute("RELEASE txc_call")
            raise
        b.guard.deadline = None
        conn.execute("RELEASE txc_call")
        return results, wrote

    def _run_one(self, b, i, st):
        where = "statement %d: %s" % (i + 1, snippet(st.sql))
        params = [txc.unvalue(v) for v in (st.params or [])]
        conn, guard = b.conn, b.guard
        before = conn.total_changes
        guard.user, guard.denied, guard.ddl = True, None, False
        try:
            cur = conn.execute(st.sql, params)
            rows = cur.fetchall()
        except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, TypeError) as e:
            if guard.timed_out:
                raise Refused("TIMEOUT", "%s: the call's statements ran longer than %.0f s and were "
                              "interrupted (%s)" % (self.resource, MAX_CALL_SECONDS, where))
            raise Refused("SQL_ERROR", "%s: %s (%s)" % (self.resource, guard.denied or e, where))
        finally:
            guard.user = False
        changed = max(cur.rowcount, 0) if conn.total_changes != before else 0
        if st.expect_rows is not None and st.expect_rows != changed:
            raise Refused("EXPECTATION_FAILED", "%s changed %d rows, expected %d"
                          % (where, changed, st.expect_rows))
        rs = txc.T.ResultSet(columns=[d[0] for d in (cur.description or [])],
                             rows=[txc.T.Row(values=[txc.value(v) for v in r]) for r in rows],
                             rows_changed=changed)
        return rs, bool(changed) or guard.ddl

    def _execute(self, b, statements, wait_die):
        """Runs statements in branch b (taking the write lock on its first
        call). On failure nothing of this call is applied; a first call
        that fails leaves no branch."""
        if self.storage_failed:
            raise Refused("STORAGE_FAILED", self.storage_failed)
        if b.conn is None:
            self._acquire_writer(b, wait_die)
        try:
            try:
                results, wrote = self._run_call(b, statements)
            except sqlite3.Error as e:  # the savepoint itself failed
                raise Refused("INTERNAL", "%s: %s" % (self.resource, e))
        except Refused as e:
            if not b.conn.in_transaction:
                # SQLite rolled the whole local transaction back (a full disk,
                # a constraint with ON CONFLICT ROLLBACK): the earlier work is gone.
                b.doomed = "%s rolled the branch back: %s" % (self.resource, e.message)
                b.calls = []
                self._release(b)
            elif b.state is None and e.code not in ("EXPECTATION_FAILED", "TIMEOUT"):
                self._release(b)
            raise
        b.calls.append(list(statements))
        b.wrote = b.wrote or wrote
        return results

    # ---------------------------------------------------------- ends of a branch

    def _set(self, b, state):
        b.state = state
        b.since = mono()

    def _durable_prepare(self, b):
        """The PREPARE durability point: the row, with the statements to redo,
        is on disk when this returns."""
        self.log.put(b, PREPARED)

    def _prepare(self, b):
        """ACTIVE -> PREPARED durably; returns the vote response."""
        try:
            self._durable_prepare(b)
        except sqlite3.Error as e:
            self.storage_failed = "%s: the branch log could not be written (%s); restart the agent" \
                                  % (self.resource, e)
            log.error("%s", self.storage_failed)
            self._rollback(b)
            return self._vote("NO", "could not prepare: STORAGE_FAILED: " + self.storage_failed)
        self._set(b, PREPARED)
        b.next_query = mono() + self.in_doubt_after
        b.query_backoff = self.in_doubt_after
        log.info("prepared txid=%s statements=%d; voting YES", tx(b.txid),
                 sum(len(c) for c in b.calls))
        return self._vote("YES")

    def _release_read_only(self, b):
        self._release(b)
        b.calls = []
        self._set(b, COMMITTED)
        try:
            self.log.put(b, COMMITTED)
        except sqlite3.Error as e:
            log.warning("recording read-only txid=%s: %s", tx(b.txid), e)

    def _commit(self, b):
        if b.redo_error:
            raise Refused("INTERNAL", "branch %s on %s could not be redone after the restart (%s); "
                          "it cannot commit until the data is repaired and the agent restarted"
                          % (tx(b.txid), self.resource, b.redo_error))
        if self.storage_failed:
            raise Refused("STORAGE_FAILED", self.storage_failed)
        try:
            b.conn.execute("INSERT INTO txc_applied VALUES (?, ?, ?)", (b.txid[0], b.txid[1], wall_ms()))
            b.conn.execute("COMMIT")  # synchronous=FULL: the data and the txid are on disk
        except sqlite3.Error as e:
            self.storage_failed = "%s: committing branch %s failed (%s); restart the agent (the " \
                                  "branch is redone and committed then)" % (self.resource, tx(b.txid), e)
            log.error("%s", self.storage_failed)
            raise Refused("STORAGE_FAILED", self.storage_failed)
        self._release(b)
        b.calls = []
        self._set(b, COMMITTED)
        try:
            self.log.put(b, COMMITTED)
        except sqlite3.Error as e:
            # txc_applied decides at the next start; the log row only lags.
            log.warning("marking txid=%s committed in the log: %s", tx(b.txid), e)
        log.info("committed txid=%s", tx(b.txid))

    def _tombstone_unknown(self, b):
        """ABORT of a txid with no branch here: a tombstone, so that a late
        PREPARE (one-shot work included) votes NO and a late Execute is
        refused."""
        self._set(b, ABORTED)
        self.log.put(b, ABORTED)

    def _rollback(self, b):
        had = b.state
        self._release(b)
        b.calls = []
        b.doomed = None
        b.redo_error = None
        if had is None:
            try:
                self._tombstone_unknown(b)
            except sqlite3.Error as e:
                log.warning("tombstone of txid=%s not recorded (presumed abort covers it): %s", tx(b.txid), e)
            log.info("aborted txid=%s (no branch here: %s)", tx(b.txid),
                     "tombstone" if b.state == ABORTED else "nothing recorded")
            return
        self._set(b, ABORTED)
        try:
            self.log.put(b, ABORTED)
        except sqlite3.Error as e:
            log.warning("tombstone of txid=%s not recorded (presumed abort covers it): %s", tx(b.txid), e)
        log.info("rolled back txid=%s was=%s", tx(b.txid), had)

    # ---------------------------------------------------------- the branch table

    def _load(self, txid):
        b = Branch(txid)
        row = self.log.get(txid)
        if row is not None:
            b.state, b.wrote = row[0], bool(row[1])
        return b

    @contextlib.contextmanager
    def _branch(self, txid, cancel=False):
        with self.mu:
            b = self.branches.get(txid)
            if b is None:
                b = self.branches[txid] = self._load(txid)
            b.users += 1
        try:
            if cancel:
                # An ABORT does not wait behind a statement waiting for the lock.
                b.cancel = True
                with self.writer_cv:
                    self.writer_cv.notify_all()
            with b.lock:
                try:
                    yield b
                finally:
                    if cancel:
                        b.cancel = False
        finally:
            with self.mu:
                b.users -= 1

    # ---------------------------------------------------------- request checks

    def _check(self, req, kind, need_resource=True):
        if req is None:
            raise Refused("INVALID_ARGUMENT", "%s is missing (the call's argument, field 1)" % kind)
        t = req.txid
        if t is None or t.epoch is None or t.seq is None:
            raise Refused("INVALID_ARGUMENT", "%s.txid is missing" % kind)
        for field in ("epoch", "seq"):
            if getattr(t, field) < 1:
                raise Refused("INVALID_ARGUMENT", "%s.txid.%s = %d: a txid's epoch and seq are >= 1"
                              % (kind, field, getattr(t, field)))
        if need_resource:
            if not req.resource:
                raise Refused("INVALID_ARGUMENT", "%s.resource is empty: name the resource" % kind)
            if req.resource != self.resource:
                raise Refused("INVALID_ARGUMENT", "this agent hosts no resource named '%s' (it "
                              "hosts '%s')" % (snippet(req.resource), self.resource))
        return (t.epoch, t.seq)

    @staticmethod
    def _check_statements(stmts, field):
        if len(stmts) > MAX_STATEMENTS:
            raise Refused("INVALID_ARGUMENT", "%s holds %d statements; at most %d travel in one "
                          "request: split the work over several Execute calls of the same "
                          "transaction" % (field, len(stmts), MAX_STATEMENTS))
        for i, st in enumerate(stmts):
            if st is None or st.sql is None:
                raise Refused("INVALID_ARGUMENT", "%s[%d].sql is missing" % (field, i))
            if not st.sql.strip():
                raise Refused("INVALID_ARGUMENT", "%s[%d].sql is empty" % (field, i))
            if st.expect_rows is not None and st.expect_rows < 0:
                raise Refused("INVALID_ARGUMENT", "%s[%d].expect_rows = %d: a row count is >= 0"
                              % (field, i, st.expect_rows))

    @staticmethod
    def _status(code="OK", message=""):
        return txc.T.Status(code=getattr(txc.T.Code, code), message=message)

    def _vote(self, vote, reason="", code="OK", message=""):
        return txc.T.PrepareResponse(status=self._status(code, message),
                                     vote=getattr(txc.T.Vote, vote), reason=reason)

    # ---------------------------------------------------------- Agent service

    def Execute(self, req):
        resp = txc.T.ExecuteResponse(status=self._status(), results=[], incarnation=self.incarnation)
        try:
            txid = self._check(req, "ExecuteRequest")
            if not req.statements:
                raise Refused("INVALID_ARGUMENT", "ExecuteRequest.statements is empty: send at "
                              "least one statement")
            self._check_statements(req.statements, "ExecuteRequest.statements")
            if req.timeout_ms is not None and not 0 <= req.timeout_ms <= MAX_TIMEOUT_MS:
                raise Refused("INVALID_ARGUMENT", "ExecuteRequest.timeout_ms = %d: a timeout is 0 "
                              "(the agent's default) to %d ms" % (req.timeout_ms, MAX_TIMEOUT_MS))
            with self._branch(txid) as b:
                if b.state == ABORTED:
                    raise Refused("ABORTED", "transaction %s is already aborted on %s; begin a new "
                                  "transaction" % (tx(txid), self.resource))
                if b.state in (PREPARED, PRECOMMITTED, COMMITTED):
                    raise Refused("INVALID_ARGUMENT", "branch %s on %s is %s; it takes no more "
                                  "statements" % (tx(txid), self.resource, b.state))
                if b.doomed:
                    raise Refused("ABORTED", "branch %s on %s will vote NO: %s; roll the "
                                  "transaction back" % (tx(txid), self.resource, b.doomed))
                timeout = req.timeout_ms / 1000.0 if req.timeout_ms else self.active_timeout
                b.active_deadline = mono() + timeout
                try:
                    resp.results = self._execute(b, req.statements, wait_die=False)
                except Refused as e:
                    if e.code in ("EXPECTATION_FAILED", "TIMEOUT") and b.conn is not None:
                        # The branch cannot do what the client asked: it votes NO.
                        b.doomed = e.message
                        if b.state is None:
                            self._set(b, ACTIVE)
                    raise
                if b.state is None:
                    self._set(b, ACTIVE)
                    log.info("began txid=%s", tx(txid))
        except Refused as e:
            resp.status = self._status(e.code, e.message)
        return resp

    def Prepare(self, req):
        try:
            txid = self._check(req, "PrepareRequest")
            for i, p in enumerate(req.participants or []):
                if p.incarnation is not None and p.incarnation < 0:
                    raise Refused("INVALID_ARGUMENT", "PrepareRequest.participants[%d].incarnation "
                                  "= %d: an agent incarnation is >= 0" % (i, p.incarnation))
            if req.protocol not in (txc.T.Protocol.TWO_PC, txc.T.Protocol.THREE_PC):
                raise Refused("INVALID_ARGUMENT", "PrepareRequest.protocol = %s: a protocol is "
                              "TWO_PC (1) or THREE_PC (2)" % req.protocol)
            if req.work is not None:
                if not req.work:
                    raise Refused("INVALID_ARGUMENT", "PrepareRequest.work is empty: a one-shot "
                                  "branch carries at least one statement")
                self._check_statements(req.work, "PrepareRequest.work")
        except Refused as e:
            return self._vote("NO", e.message, e.code, e.message)
        with self._branch(txid) as b:
            return self._prepare_locked(b, req)

    def _prepare_locked(self, b, req):
        txid = b.txid
        if b.state in IN_DOUBT:
            return self._vote("YES")  # a duplicate PREPARE
        if b.state == COMMITTED:
            return self._vote("YES" if b.wrote else "READ_ONLY")
        if b.state == ABORTED:
            return self._vote("NO", "transaction %s is already aborted on %s" % (tx(txid), self.resource))
        b.participants = list(req.participants or [])
        b.protocol = req.protocol
        if b.doomed:
            why = b.doomed
            self._rollback(b)
            return self._vote("NO", why)
        if req.work is not None:
            try:
                self._execute(b, req.work, wait_die=True)
            except Refused as e:
                # One-shot: vote NO and leave a tombstone (undoing any earlier work).
                self._rollback(b)
                return self._vote("NO", "%s: %s" % (e.code, e.message))
            if not b.wrote:
                self._release_read_only(b)
                return self._vote("READ_ONLY")
            return self._prepare(b)
        seen = [p.incarnation for p in b.participants
                if p.resource == self.resource and p.incarnation is not None]
        if seen and seen[-1] != self.incarnation:
            self._rollback(b)
            return self._vote("NO", "the agent for %s restarted since this transaction's work was "
                              "done (incarnation %d -> %d); that work may be lost"
                              % (self.resource, seen[-1], self.incarnation))
        if b.state is None:
            self._rollback(b)
            return self._vote("NO", "no work was done for %s on %s (never executed, or rolled back "
                              "when the agent restarted)" % (tx(txid), self.resource))
        if not b.wrote:
            self._release_read_only(b)
            return self._vote("READ_ONLY")
        return self._prepare(b)

    def Decide(self, req):
        resp = txc.T.DecideResponse(status=self._status())
        try:
            txid = self._check(req, "DecideRequest")
            if req.outcome not in (txc.T.Outcome.COMMITTED, txc.T.Outcome.ABORTED):
                raise Refused("INVALID_ARGUMENT", "DecideRequest.outcome = %s: a decision is "
                              "COMMITTED (2) or ABORTED (3)" % req.outcome)
            precommit = bool(req.precommit)
            if precommit and req.outcome != txc.T.Outcome.COMMITTED:
                raise Refused("INVALID_ARGUMENT", "DecideRequest.outcome = %s: a PRE_COMMIT "
                              "(precommit set) carries COMMITTED (2)" % req.outcome)
            aborting = req.outcome == txc.T.Outcome.ABORTED
            with self._branch(txid, cancel=aborting) as b:
                self._decide_locked(b, precommit, aborting)
        except Refused as e:
            resp.status = self._status(e.code, e.message)
            if e.refused:
                resp.refused = True
        return resp

    def _decide_locked(self, b, precommit, aborting):
        name = "branch %s on %s" % (tx(b.txid), self.resource)
        if aborting:
            if b.state == ABORTED:
                return
            if b.state == COMMITTED:
                if not b.wrote:
                    return  # read-only: nothing to undo
                raise Refused("INTERNAL", "%s is committed here; refusing to abort it" % name,
                              refused=True)
            if b.state == PRECOMMITTED:
                log.error("%s is PRECOMMITTED and the group says ABORTED: 3PC's PRECOMMIT should "
                          "have decided a commit; rolling back", name)
            self._rollback(b)
            return
        if b.state == ABORTED:
            raise Refused("INTERNAL", "%s is aborted here; refusing to %s it"
                          % (name, "precommit" if precommit else "commit"), refused=True)
        if b.state == ACTIVE:
            raise Refused("INVALID_ARGUMENT", "%s was never prepared; it cannot %s"
                          % (name, "precommit" if precommit else "commit"))
        if b.state is None:
            raise Refused("NOT_FOUND", "%s does not exist: it was never executed or prepared here; "
                          "refusing to %s it" % (name, "precommit" if precommit else "commit"))
        if b.state == COMMITTED:
            return
        if precommit:
            if b.state == PREPARED:
                # 3PC's PRE_COMMIT: recorded durably, the commit follows.
                self.log.put(b, PRECOMMITTED)
                self._set(b, PRECOMMITTED)
                log.info("precommitted txid=%s", tx(b.txid))
            return
        self._commit(b)

    def ListBranches(self, req):
        now = mono()
        out = {}
        for epoch, seq, state, wrote, updated in self.log.recent(wall_ms() - int(FINAL_RETENTION_S * 1000)):
            out[(epoch, seq)] = txc.T.BranchInfo(
                txid=txc.T.TxId(epoch=epoch, seq=seq), resource=self.resource,
                state=state if (state != COMMITTED or wrote) else "read-only",
                age_ms=max(0, wall_ms() - updated))
        with self.mu:
            branches = list(self.branches.values())
        for b in branches:
            if b.state is None:
                continue
            out[b.txid] = txc.T.BranchInfo(txid=txc.T.TxId(epoch=b.txid[0], seq=b.txid[1]),
                                           resource=self.resource, state=b.state_name(),
                                           age_ms=int((now - b.since) * 1000))
        return txc.T.ListBranchesResponse(status=self._status(),
                                          branches=[out[k] for k in sorted(out)])

    def BranchState(self, req):
        try:
            txid = self._check(req, "BranchStateRequest", need_resource=False)
            if not req.resource:
                raise Refused("INVALID_ARGUMENT", "BranchStateRequest.resource: name the resource")
        except Refused as e:
            return txc.T.BranchStateResponse(status=self._status(e.code, e.message), state="")
        if req.resource != self.resource:
            return txc.T.BranchStateResponse(status=self._status(), state="none")
        with self.mu:
            b = self.branches.get(txid)
            state = b.state_name() if b is not None else None
        if state is None:
            state = self._load(txid).state_name()
        return txc.T.BranchStateResponse(status=self._status(), state=state)

    def Resolve(self, req):
        return txc.T.AgentResolveResponse(status=self._status(
            "INVALID_ARGUMENT", "not supported: participant.py takes no heuristic decisions "
            "(an in-doubt branch waits for the coordinator group)"), branches=[])

    def Forget(self, req):
        return txc.T.AgentForgetResponse(status=self._status(
            "INVALID_ARGUMENT", "not supported: participant.py keeps no heuristic records"),
            forgotten=0)

    # ---------------------------------------------------------- recovery

    def recover(self):
        """Start-up: txc_applied exists; every PREPARED branch of the log is
        either committed already (its txid in txc_applied) or redone and held
        in doubt."""
        conn = sqlite3.connect(self.data_path, isolation_level=None, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS txc_applied(epoch INTEGER NOT NULL, "
                     "seq INTEGER NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY(epoch, seq))")
        for epoch, seq, state, statements, participants, protocol in self.log.in_doubt():
            txid = (epoch, seq)
            b = Branch(txid)
            b.wrote = True
            b.protocol = protocol or 1
            b.participants = [txc.T.Participant(**p) for p in json.loads(participants or "[]")]
            b.calls = [[statement_of(s) for s in call] for call in json.loads(statements or "[]")]
            if conn.execute("SELECT 1 FROM txc_applied WHERE epoch=? AND seq=?", txid).fetchone():
                self._set(b, COMMITTED)
                b.calls = []
                self.log.put(b, COMMITTED)
                log.info("recovered txid=%s: committed before the restart", tx(txid))
                continue
            self._set(b, state)
            try:
                self._redo(b)
                log.warning("recovered txid=%s: %s and in doubt, redone (statements=%d) and held; "
                            "asking the coordinator group", tx(txid), state,
                            sum(len(c) for c in b.calls))
            except (Refused, sqlite3.Error) as e:
                b.redo_error = getattr(e, "message", str(e))
                self._release(b)
                log.error("recovered txid=%s: %s but its statements could not be redone: %s. It cannot "
                          "commit; an ABORT still ends it", tx(txid), state, b.redo_error)
            b.next_query = mono()
            b.query_backoff = self.in_doubt_after
            self.branches[txid] = b
        conn.close()

    def _redo(self, b):
        with self.writer_cv:
            if self.writer is not None:
                raise Refused("INTERNAL", "branch %s holds the write lock already" % tx(self.writer.txid))
            self.writer = b
        try:
            self._open(b)
        except sqlite3.Error as e:
            self._release(b)
            raise Refused("UNAVAILABLE", str(e))
        for call in b.calls:
            self._run_call(b, call)

    # ---------------------------------------------------------- background work

    def _ask(self, txid):
        """The group's outcome of txid (a name), or None if nobody answered."""
        try:
            resp = self.group.call("Outcome", txc.T.OutcomeRequest(
                txid=txc.T.TxId(epoch=txid[0], seq=txid[1])), 3.0)
        except txc.TxcError as e:
            log.warning("asking the outcome of txid=%s: %s", tx(txid), e.message)
            return None
        if resp.status.code == txc.T.Code.INVALID_ARGUMENT:
            return "unknown"  # never allocated by this group
        if resp.status.code != txc.T.Code.OK:
            log.warning("asking the outcome of txid=%s: %s: %s", tx(txid),
                        txc.code_name(resp.status.code), resp.status.message)
            return None
        return txc.outcome_name(resp.outcome)

    def tick(self):
        now = mono()
        with self.mu:
            doubt = [b for b in self.branches.values()
                     if b.state in IN_DOUBT and b.next_query <= now]
            idle = [b for b in self.branches.values()
                    if b.state == ACTIVE and b.active_deadline <= now]
            for txid, b in list(self.branches.items()):
                if b.users == 0 and not b.lock.locked() and (
                        b.state is None or (b.state in (COMMITTED, ABORTED)
                                            and now - b.since > FINAL_RETENTION_S)):
                    del self.branches[txid]
        for b in doubt:
            self._settle_in_doubt(b)
        for b in idle:
            self._settle_idle(b)

    def _settle_in_doubt(self, b):
        outcome = self._ask(b.txid)
        with self._branch(b.txid) as cur:
            if cur is not b or b.state not in IN_DOUBT:
                return
            b.query_backoff = min(b.query_backoff * 2, self.query_max)
            b.next_query = mono() + b.query_backoff
            if outcome == "committed":
                log.info("in-doubt txid=%s: the group says committed", tx(b.txid))
                try:
                    self._commit(b)
                except Refused as e:
                    log.error("committing in-doubt txid=%s: %s", tx(b.txid), e.message)
            elif outcome == "aborted":
                log.info("in-doubt txid=%s: the group says aborted", tx(b.txid))
                self._rollback(b)
            elif outcome == "forgotten":
                log.error("in-doubt txid=%s: the coordinator group no longer remembers its outcome "
                          "(FORGOTTEN: it may have committed). Kept in doubt, holding the write "
                          "lock; an operator must decide", tx(b.txid))
            elif outcome is not None:
                log.info("in-doubt txid=%s: the group says %s; waiting", tx(b.txid), outcome)

    def _settle_idle(self, b):
        outcome = self._ask(b.txid)
        with self._branch(b.txid) as cur:
            if cur is not b or b.state != ACTIVE or b.active_deadline > mono():
                return
            if outcome == "pending":
                b.active_deadline = mono() + self.active_timeout
            elif outcome is None:
                b.active_deadline = mono() + 1.0
            else:
                log.warning("active txid=%s had no request for %.0f s and the group says %s: rolling "
                            "it back", tx(b.txid), self.active_timeout, outcome)
                self._rollback(b)

    def run_ticker(self):
        while not self._stop.wait(0.2):
            try:
                self.tick()
            except Exception:
                log.exception("background tick failed")


# ------------------------------------------------------------------ the server

RESPONSES = {"Execute": "ExecuteResponse", "Prepare": "PrepareResponse",
             "Decide": "DecideResponse", "ListBranches": "ListBranchesResponse",
             "Resolve": "AgentResolveResponse", "Forget": "AgentForgetResponse",
             "BranchState": "BranchStateResponse"}


class Handler:
    """The generated processor's handler: every method answers with a
    status, never an exception (a bug in a method is logged and answered
    INTERNAL)."""

    def __init__(self, agent):
        self.agent = agent

    def __getattr__(self, method):
        if method not in RESPONSES:
            raise AttributeError(method)
        impl = getattr(self.agent, method)

        def serve(req):
            try:
                return impl(req)
            except Exception as e:
                log.exception("%s failed", method)
                resp = getattr(txc.T, RESPONSES[method])()
                resp.status = txc.T.Status(code=txc.T.Code.INTERNAL,
                                           message="%s: %s: %s" % (method, type(e).__name__, e))
                return resp
        return serve


def recv_exact(sock, n):
    chunks = []
    while n > 0:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class FramedServer:
    """Framed binary Thrift over TCP (protocol/rpc.h's wire format). Each
    connection has a reader thread; each request is served on a thread of
    its own and its reply written when ready (matched by seqid), so a
    coordinator that pipelines calls on one connection gets every answer,
    and a call that waits (a lock) does not hold up the ones behind it."""

    def __init__(self, processor, host, port):
        self.processor = processor
        self.listener = socket.create_server((host, port), reuse_port=False, backlog=128)
        self.in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.connections = 0
        self.mu = threading.Lock()

    def serve_forever(self):
        while True:
            conn, peer = self.listener.accept()
            with self.mu:
                full = self.connections >= MAX_CONNECTIONS
                if not full:
                    self.connections += 1
            if full:
                log.warning("refusing a connection from %s: %d open", peer, MAX_CONNECTIONS)
                conn.close()
                continue
            threading.Thread(target=self._read, args=(conn, peer), daemon=True).start()

    def _read(self, conn, peer):
        wlock = threading.Lock()
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                head = recv_exact(conn, 4)
                if head is None:
                    return
                (length,) = struct.unpack(">I", head)
                if length == 0 or length > MAX_FRAME_BYTES:
                    log.warning("closing the connection from %s:%d: a frame of %d bytes (the limit "
                                "is %d)", peer[0], peer[1], length, MAX_FRAME_BYTES)
                    return
                frame = recv_exact(conn, length)
                if frame is None:
                    return
                self.in_flight.acquire()
                threading.Thread(target=self._serve, args=(conn, wlock, frame, peer),
                                 daemon=True).start()
        except OSError:
            return
        finally:
            with self.mu:
                self.connections -= 1
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            with wlock:
                conn.close()

    def _serve(self, conn, wlock, frame, peer):
        try:
            out = txc.TTransport.TMemoryBuffer()
            self.processor.process(
                txc.TBinaryProtocol.TBinaryProtocol(txc.TTransport.TMemoryBuffer(frame)),
                txc.TBinaryProtocol.TBinaryProtocol(out))
            reply = out.getvalue()
        except Exception as e:
            log.warning("closing the connection from %s:%d: a malformed request (%s: %s)",
                        peer[0], peer[1], type(e).__name__, e)
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        finally:
            self.in_flight.release()
        try:
            with wlock:
                conn.sendall(struct.pack(">I", len(reply)) + reply)
        except OSError:
            pass  # the connection closed: the caller sees the call fail


# ------------------------------------------------------------------ main

def build_parser(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--listen", required=True, help="HOST:PORT to serve the Agent service on")
    ap.add_argument("--data", required=True, help="the agent's directory (NAME.db, NAME.log.db)")
    ap.add_argument("--coordinator", required=True,
                    help="the coordinator replicas, HOST:PORT[,HOST:PORT...] (asked about "
                         "in-doubt branches)")
    ap.add_argument("--resource", required=True, help="the resource's name (1-64 of A-Z a-z 0-9 _ -)")
    ap.add_argument("--lock-timeout-ms", type=int, default=2000,
                    help="how long a branch waits for the database's write lock (default 2000)")
    ap.add_argument("--active-timeout-ms", type=int, default=60000,
                    help="an ACTIVE branch idle this long asks whether its transaction lives "
                         "(default 60000)")
    ap.add_argument("--gen-py", help="the generated Python code (default: <repo>/build/gen-py "
                    "or $TXC_GEN_PY)")
    return ap


def main(argv=None, agent_class=Participant, description="txcoord participant agent over SQLite",
         configure=None):
    ap = build_parser(description)
    if configure:
        configure(ap)
    a = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s " + os.path.basename(sys.argv[0]) +
                               "[" + a.resource + "] %(levelname)s %(message)s")
    txc.load_thrift(a.gen_py)
    if not RESOURCE_NAME.match(a.resource):
        sys.exit("--resource %s: a resource name is 1-64 characters of A-Z a-z 0-9 _ -" % a.resource)
    try:
        host, port = txc.parse_address(a.listen)
        coordinators = [c.strip() for c in a.coordinator.split(",") if c.strip()]
        for c in coordinators:
            txc.parse_address(c)
    except txc.TxcError as e:
        sys.exit("bad address: %s" % e.message)
    if a.lock_timeout_ms < 0 or a.active_timeout_ms <= 0:
        sys.exit("--lock-timeout-ms is >= 0 and --active-timeout-ms > 0")
    os.makedirs(a.data, exist_ok=True)
    agent = agent_class(a.resource, a.data, coordinators, lock_timeout=a.lock_timeout_ms / 1000.0,
                        active_timeout=a.active_timeout_ms / 1000.0)
    if hasattr(agent, "configure"):
        agent.configure(a)
    agent.recover()
    server = FramedServer(txc.Agent.Processor(Handler(agent)), host, port)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    threading.Thread(target=agent.run_ticker, daemon=True).start()
    log.info("serving %s on %s:%d (incarnation %d, data %s)", a.resource, host,
             server.listener.getsockname()[1], agent.incarnation, agent.data_path)
    server.serve_forever()


if __name__ == "__main__":
    main()
