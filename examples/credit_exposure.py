"""Collective constraint violation: each agent stays under its credit limit; together
they exceed the firm's exposure cap.

Three desk agents grant credit to their customers in parallel, 10 at a time. Each desk
keeps to its own limit of 40; the firm may be exposed for at most 100 in total.

- naive: a plain Ray actor holds the book; each desk checks only its own limit. The
  total reaches 120.
- agentcast: the book is a resource with an ``@invariant`` over its whole state (total
  exposure <= 100). Its one writer checks it on every write before the write commits:
  the grants that would cross the cap are refused (``InvariantViolationError``, logged),
  whichever desk sent them, and the total never exceeds 100.

Run it on the embedded default:        python examples/credit_exposure.py
or on a cluster:   ray job submit --working-dir . -- python examples/credit_exposure.py

It exits non-zero if agentcast's total exceeds the cap at any version of the log.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import ray
from _progress import Steps
from pydantic import BaseModel

from actors import Agent, Resource, System, handler, invariant, read, write
from runtime import InvariantViolationError, decode

FIRM_CAP = 100
DESK_LIMIT = 40
STEP = 10
DESKS = ("desk-a", "desk-b", "desk-c")


class CreditBook(Resource):
    """Exposure per customer; the firm's total is capped."""

    @write
    def grant(self, state: dict[str, Any], customer: str, amount: int) -> int:
        state[customer] = state.get(customer, 0) + amount
        return int(state[customer])

    @read
    def total(self, state: dict[str, Any]) -> int:
        return sum(state.values())

    @invariant
    def exposure_under_cap(self, state: dict[str, Any]) -> bool:
        return sum(state.values()) <= FIRM_CAP


class Grants(BaseModel):
    desk: str
    customers: list[str]


class Granted(BaseModel):
    granted: int
    refused: int


class Desk(Agent):
    """Grants credit up to its own limit; the firm's cap is the book's business."""

    @handler
    async def grant_all(self, grants: Grants) -> Granted:
        book, granted, refused = self.resource("credit"), 0, 0
        for customer in grants.customers:
            if granted + STEP > DESK_LIMIT:
                break
            try:
                await book.grant(customer, STEP)
                granted += STEP
            except InvariantViolationError:
                refused += 1
        return Granted(granted=granted, refused=refused)


@ray.remote(num_cpus=0)
class NaiveBook:
    def __init__(self) -> None:
        self.book: dict[str, int] = {}

    def grant(self, customer: str, amount: int) -> int:
        self.book[customer] = self.book.get(customer, 0) + amount
        return self.book[customer]

    def total(self) -> int:
        return sum(self.book.values())


@ray.remote(num_cpus=0)
def naive_desk(book: Any, grants: Grants) -> int:
    granted = 0
    for customer in grants.customers:
        if granted + STEP > DESK_LIMIT:
            break
        ray.get(book.grant.remote(customer, STEP))
        granted += STEP
    return granted


def plans() -> list[Grants]:
    return [Grants(desk=d, customers=[f"{d}-customer-{i}" for i in range(6)]) for d in DESKS]


def run_naive() -> int:
    book = NaiveBook.remote()  # type: ignore[attr-defined]
    ray.get([naive_desk.remote(book, plan) for plan in plans()])
    total: int = ray.get(book.total.remote())
    ray.kill(book)
    return total


def run_agentcast(system: System) -> tuple[int, list[Granted]]:
    system.resource(CreditBook, name="credit", writers=list(DESKS))
    groups = [system.agent(Desk, name=desk) for desk in DESKS]
    reports = list(ray.get([g.call(plan) for g, plan in zip(groups, plans(), strict=True)]))
    return system.get_resource("credit").total(), reports


def highest_logged_total(system: System) -> int:
    """The highest total at any version, replayed from the log's before/after records."""
    state: dict[str, int] = {}
    highest = 0
    for record in system.log("credit").records():
        for key, _, _, has_after, after in decode(record.diff):
            if has_after:
                state[key] = after
        highest = max(highest, sum(state.values()))
    return highest


def _line(name: str, total: int) -> str:
    over = "YES" if total > FIRM_CAP else "no"
    return f"{name:<10} total exposure: {total:>4}   over the cap: {over}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    namespace = f"credit-exposure-{uuid.uuid4().hex[:8]}"
    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace=namespace) as system:
        steps.next("the naive desks: each checks its own limit")
        naive = run_naive()
        steps.next("the same desks under the firm-wide invariant")
        ours, reports = run_agentcast(system)
        highest = highest_logged_total(system)
        refusals = [r for r in system.log("credit").rejections() if r.reason == "invariant"]
    print(f"{len(DESKS)} desks, each limited to {DESK_LIMIT}; the firm's cap is {FIRM_CAP}")
    print(_line("naive", naive))
    print(_line("agentcast", ours) + f"   grants refused by the invariant: "
          f"{sum(r.refused for r in reports)} (logged: {len(refusals)})")  # fmt: skip
    if highest > FIRM_CAP or ours > FIRM_CAP:
        print(f"agentcast: FAILED: exposure reached {highest}")
        return 1
    print(f"agentcast: the invariant held at every version of the log (highest {highest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
