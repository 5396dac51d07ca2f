#!/usr/bin/python3
"""participant.py with deliberate bugs, for testing what tests a participant
(a conformance kit must FAIL against it). Never use it for data.

  --bug-early-vote      (default on) votes YES without making the PREPARED
                        record durable: the prepared state lives only in
                        memory, so a crash after the vote loses the branch
                        that the group may commit
  --bug-forget-tombstones (default on) an ABORT for a txid with no branch here
                        leaves nothing behind, so a late one-shot PREPARE of
                        that txid does the work and votes YES

Each has a --no-... flag to turn it off. Everything else is participant.py's
code: this file only overrides its two durability hooks.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import participant  # noqa: E402

log = participant.log


class BrokenParticipant(participant.Participant):
    early_vote = True
    forget_tombstones = True

    def configure(self, args):
        self.early_vote = args.bug_early_vote
        self.forget_tombstones = args.bug_forget_tombstones
        log.warning("BROKEN ON PURPOSE: early vote %s, forgotten tombstones %s",
                    "on" if self.early_vote else "off", "on" if self.forget_tombstones else "off")

    def _durable_prepare(self, b):
        if not self.early_vote:
            return super()._durable_prepare(b)
        # The bug: nothing is written; the YES vote rests on memory alone.

    def _tombstone_unknown(self, b):
        if not self.forget_tombstones:
            return super()._tombstone_unknown(b)
        # The bug: no record, not even in memory; the txid looks never seen.
        self._set(b, None)


def flags(ap):
    for name, what in (("early-vote", "vote YES before the PREPARED record is durable"),
                       ("forget-tombstones", "leave no tombstone for an ABORT of an unknown txid")):
        dest = "bug_" + name.replace("-", "_")
        ap.add_argument("--bug-" + name, dest=dest, action="store_true", default=True,
                        help=what + " (default)")
        ap.add_argument("--no-bug-" + name, dest=dest, action="store_false", help="do not " + what)


if __name__ == "__main__":
    participant.main(agent_class=BrokenParticipant, configure=flags,
                     description="participant.py with deliberate bugs (testing only)")
