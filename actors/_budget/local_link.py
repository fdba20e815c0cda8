"""A ``BudgetLink`` over a ``BudgetCore`` in the caller's own process, skipping Ray: what the
budget actor does with a metered model's calls, for the CPU rows of ``agentcast bench
budget`` and for tests of the metering logic on the budget's real books."""

from __future__ import annotations

import asyncio
from typing import Any

from policies import BudgetPolicy

from .core import BudgetCore


class CoreLink:
    """A ``BudgetLink`` over a ``BudgetCore`` in this process: each call runs and commits
    at once (after one turn of the loop, as a real call would yield), and is counted."""

    def __init__(self, core: BudgetCore) -> None:
        self.core = core
        self.known_policy = core.policy
        self.calls: list[str] = []

    async def policy(self) -> BudgetPolicy:
        """The core's policy."""
        return self.core.policy

    async def call(self, method: str, *args: Any) -> Any:
        """Run ``method`` on the core as the budget actor would, and commit.

        Raises:
            AssertionError: a method the metered path never calls.
        """
        self.calls.append(method)
        await asyncio.sleep(0)
        return answer_and_commit(self.core, method, *args)


def answer_and_commit(core: BudgetCore, method: str, *args: Any) -> Any:
    """Run ``method`` on ``core`` as the budget actor would, then commit.

    Raises:
        AssertionError: a method the metered path never calls.
    """
    try:
        return _answer(core, method, *args)
    finally:
        core.commit()


def _answer(core: BudgetCore, method: str, *args: Any) -> Any:
    if method == "renew":
        settles, context, grant_id, need, want, holder = args
        for settle_id, used in settles:
            core.settle(grant_id=settle_id, context=context, used=used)
        return core.reserve(grant_id=grant_id, context=context, need=need, want=want, holder=holder)
    if method == "settle":
        grant_id, context, used = args
        return core.settle(grant_id=grant_id, context=context, used=used)
    if method == "breaker":
        return core.breaker(args[0])
    if method == "admit":
        return core.admit(args[0])
    if method == "report":
        dependency, ok, key, holder = args
        return core.report(dependency, ok=ok, fingerprint=key, agent=holder)
    raise AssertionError(f"unexpected budget call {method}")
