"""Random sequences of acquire, release, renew, expiry, kill and restart on the locks core:
a key is never held by two exclusive holders (nor by a writer and a reader), every exclusive
grant of a key carries a newer token than every grant of it before, and a restart keeps every
grant as it was."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors._locks.core import Acquire, LocksCore
from actors._locks.status import LeaseGrant
from policies import LockPolicy
from runtime import LockError
from runtime.testing import FakeClock

KEYS = ("k:1", "k:2", "k:3")
OWNERS = ("inv:0", "inv:1", "pri:0", "pri:1")


class LockTableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.clock = FakeClock()
        self.policy = LockPolicy(enforce_order=False)
        self.core = LocksCore(self.root, self.policy, clock=self.clock)
        self.ids = itertools.count()
        self.last_token: dict[str, int] = {}
        self.last_exclusive: dict[str, int] = {}
        self.known: list[str] = []

    def teardown(self) -> None:
        self.core.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _saw(self, outcomes: dict[str, Any]) -> None:
        for outcome in outcomes.values():
            if isinstance(outcome, LeaseGrant):
                self._granted(outcome)

    def _granted(self, grant: LeaseGrant) -> None:
        """An exclusive grant's tokens are newer than every token of its keys granted
        before it; a shared grant's, newer than the last exclusive grant's. A shared lease
        takes its keys as they free up, each with a token drawn then, and is granted once
        it holds them all, so a shared lease granted meanwhile on one of those keys may
        show a newer token first: readers hold a key together, and their tokens stamp no
        write (docs/coordination.md, "Fencing tokens")."""
        for key, token in grant.tokens.items():
            newest = self.last_token.get(key, 0)
            floor = self.last_exclusive.get(key, 0) if grant.shared else newest
            if token != newest and token != floor:  # a lease resumed repeats its tokens
                assert token > floor, (key, token, grant.shared, self.last_token)
            self.last_token[key] = max(token, newest)
            if not grant.shared:
                self.last_exclusive[key] = token

    def _settle(self) -> None:
        self.core.commit()
        self._saw(self.core.resolved())

    @rule(
        owner=st.sampled_from(OWNERS),
        keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True),
        shared=st.booleans(),
        ttl=st.sampled_from([1.0, 3.0]),
    )
    def acquire(self, owner: str, keys: list[str], shared: bool, ttl: float) -> None:
        lease_id = f"l{next(self.ids)}"
        request = Acquire(
            lease_id=lease_id, owner=owner, agent=owner.split(":")[0], keys=tuple(keys),
            shared=shared, ttl_s=ttl, timeout_s=2.0,
        )  # fmt: skip
        try:
            grant = self.core.acquire(request)
        except LockError:
            grant = None
        if grant is not None:
            self._granted(grant)
        self.known.append(lease_id)
        self._settle()

    @rule(pick=st.integers(min_value=0, max_value=50))
    def release(self, pick: int) -> None:
        if self.known:
            self.core.release(self.known[pick % len(self.known)])
            self._settle()

    @rule(pick=st.integers(min_value=0, max_value=50))
    def renew(self, pick: int) -> None:
        if self.known:
            with contextlib.suppress(LockError):
                self.core.renew(self.known[pick % len(self.known)])
            self._settle()

    @rule(seconds=st.sampled_from([0.5, 1.1, 2.5]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.core.tick()
        self._settle()

    @rule(agent=st.sampled_from(("inv", "pri")))
    def kill(self, agent: str) -> None:
        newest = self.core.table.token
        fenced = self.core.kill(agent)
        # A fence is newer than every token granted before it; it is not a grant (a shared
        # co-holder of the key keeps its older token), so grants are followed on their own.
        assert all(token > newest for token in fenced.values()), (fenced, newest)
        self._settle()

    @rule()
    def restart(self) -> None:
        before = self._grants()
        self.core.close()
        self.core = LocksCore(self.root, self.policy, clock=self.clock)
        assert self._grants() == before
        self._settle()

    def _grants(self) -> dict[str, dict[str, int]]:
        return {lid: dict(lease.tokens) for lid, lease in self.core.table.leases.items()}

    @invariant()
    def no_key_has_conflicting_holders(self) -> None:
        for key, state in self.core.table.keys.items():
            modes = list(state.holders.values())
            assert all(modes) or len(modes) <= 1, (key, state.holders)


TestLockTable = LockTableMachine.TestCase
TestLockTable.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
