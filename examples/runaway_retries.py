"""Runaway retries: three research agents circle one failing search service.

Each agent asks its model what to search (the prompt is the whole transcript so far), then
calls the search tool. The search backend is down for its first 40 calls. Naively, each
agent has its own retry loop of 5 and its own token cap, and escalates once when it gives
up (starting over with the transcript so far): the spend multiplies. Through agentcast,
the three agents share one run: one token cap, one retry budget, and one breaker on the
search tool, opened for all of them when the same failure is seen twice.

Run it on the embedded default:        python examples/runaway_retries.py
or on a cluster:   ray job submit --working-dir . -- python examples/runaway_retries.py

It exits non-zero if agentcast spent more than the run's cap.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import ray
from _progress import Steps
from pydantic import BaseModel

from actors import Agent, System, handler
from policies import (
    BreakerPolicy,
    BudgetLimit,
    BudgetPolicy,
    Dimension,
    Metering,
    RetryBudget,
    Scope,
    ScopeKind,
)
from runtime import BudgetExceededError, CircuitOpenError, Message, ModelClient, ScriptedModel

AGENTS = ("planner", "researcher", "writer")
TOOL = "tool:search"
RETRIES_PER_AGENT = 5
AGENT_TOKEN_CAP = 30_000  # naive: each agent's own cap
RUN_TOKEN_CAP = 6_000  # agentcast: one cap for the whole run
REPLY = "Let me search the literature for recent results on this question, then summarise. " * 3


class SearchDownError(Exception):
    """The search backend failed."""


class SearchService:
    """The downstream service: fails its first ``down_for`` calls (it is down for a while)."""

    def __init__(self, down_for: int) -> None:
        self._down_for = down_for
        self.calls = 0

    async def search(self, query: str) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self._down_for:
            return {
                "ok": False,
                "error": f"503 backend unavailable (request req_{uuid.uuid4().hex[:10]})",
            }
        return {"ok": True, "hits": [f"paper about {query[:20]}"]}

    async def count(self) -> int:
        return self.calls


class Research(BaseModel):
    topic: str
    service: str


class Report(BaseModel):
    done: bool
    reason: str
    model_calls: int
    tool_calls: int
    tokens: int


@dataclass
class _Tally:
    model_calls: int = 0
    tool_calls: int = 0
    tokens: int = 0

    def report(self, done: bool, reason: str) -> Report:
        return Report(done=done, reason=reason, model_calls=self.model_calls,
                      tool_calls=self.tool_calls, tokens=self.tokens)  # fmt: skip


async def _think(model: ModelClient, transcript: list[Message], tally: _Tally) -> None:
    completion = await model.complete(transcript, max_tokens=128)
    tally.model_calls += 1
    tally.tokens += completion.usage.total
    transcript.append(Message(role="assistant", content=completion.text or ""))


async def _search(service: Any, topic: str, tally: _Tally) -> None:
    tally.tool_calls += 1
    result = await service.search.remote(topic)
    if not result["ok"]:
        raise SearchDownError(result["error"])


class NaiveResearcher:
    """A plain Ray actor: its own retry loop of 5, its own token cap, one escalation."""

    def __init__(self, model: ModelClient, service: Any) -> None:
        self._model = model
        self._service = service

    async def research(self, task: Research) -> Report:
        service = self._service
        tally = _Tally()
        transcript = [Message(role="user", content=f"Research: {task.topic}")]
        for _escalation in range(2):
            for _attempt in range(1 + RETRIES_PER_AGENT):
                if tally.tokens >= AGENT_TOKEN_CAP:
                    return tally.report(False, "agent cap")
                await _think(self._model, transcript, tally)
                try:
                    await _search(service, task.topic, tally)
                    return tally.report(True, "found")
                except SearchDownError as error:
                    transcript.append(Message(role="user", content=f"search failed: {error}"))
            transcript.append(Message(role="user", content="Escalated: try again, harder."))
        return tally.report(False, "gave up")


class Researcher(Agent):
    """The same agent on agentcast: metered model, guarded tool, the run's retry budget."""

    @handler
    async def research(self, task: Research) -> Report:
        service = ray.get_actor(task.service, namespace=self.namespace)
        tally = _Tally()
        transcript = [Message(role="user", content=f"Research: {task.topic}")]
        try:
            while True:
                await _think(self.model, transcript, tally)
                try:
                    async with self.budget.guard(TOOL, failures=(SearchDownError,)):
                        await _search(service, task.topic, tally)
                    return tally.report(True, "found")
                except SearchDownError as error:
                    transcript.append(Message(role="user", content=f"search failed: {error}"))
                await self.budget.retry(TOOL)
        except CircuitOpenError:
            return tally.report(False, "circuit open")
        except BudgetExceededError as error:
            return tally.report(False, f"budget: {error.dimension}")


def budget_policy() -> BudgetPolicy:
    cap = BudgetLimit(
        scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.PROMPT_TOKENS, cap=RUN_TOKEN_CAP
    )
    return BudgetPolicy(
        limits=(cap,),
        metering=Metering.PER_CALL,
        retry_budget=RetryBudget(ratio=0.0, min_retries_per_window=1, window=timedelta(minutes=1)),
        breaker=BreakerPolicy(failure_threshold=4, open_for=timedelta(minutes=1)),
        block_after_agents=3,
    )


def _line(name: str, reports: list[Report]) -> str:
    tokens = sum(r.tokens for r in reports)
    return (
        f"{name:<10} tokens: {tokens:>7,}   model calls: {sum(r.model_calls for r in reports):>3}"
        f"   tool calls: {sum(r.tool_calls for r in reports):>3}   done: "
        f"{sum(r.done for r in reports)}/{len(reports)}   ends: "
        + ", ".join(sorted({r.reason for r in reports}))
    )


def run_naive(system: System, model: ModelClient, down_for: int) -> list[Report]:
    service = ray.remote(SearchService).options(num_cpus=0).remote(down_for)
    naive = ray.remote(NaiveResearcher).options(num_cpus=0)
    agents = [naive.remote(model, service) for _ in AGENTS]
    task = Research(topic="retry storms in agent systems", service="")
    reports: list[Report] = ray.get([a.research.remote(task) for a in agents])
    for actor in (*agents, service):
        ray.kill(actor)
    return reports


def run_agentcast(system: System, model: ModelClient, down_for: int) -> list[Report]:
    name = f"search-{uuid.uuid4().hex[:6]}"
    search = ray.remote(SearchService).options(name=name, namespace=system.namespace, num_cpus=0)
    service = search.remote(down_for)  # held: a named actor lives while a handle does
    groups = [system.agent(Researcher, name=agent, model=model) for agent in AGENTS]
    task = Research(topic="retry storms in agent systems", service=name)
    reports = list(ray.get([group.call(task) for group in groups]))
    ray.kill(service)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--down-for", type=int, default=40, help="search calls that fail")
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    model = ScriptedModel(default_reply=REPLY)
    namespace = f"runaway-{uuid.uuid4().hex[:8]}"
    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace=namespace, budgets=budget_policy()) as system:
        print(f"{len(AGENTS)} agents, search down for its first {args.down_for} calls; "
              f"naive: {RETRIES_PER_AGENT} retries and a {AGENT_TOKEN_CAP:,}-token cap per agent; "
              f"agentcast: one run, a {RUN_TOKEN_CAP:,}-prompt-token cap")  # fmt: skip
        print(f"namespace {system.namespace}; watch it: {system.watch_commands()[0]}")
        steps.next("the naive agents, each retrying on its own")
        naive = run_naive(system, model, args.down_for)
        steps.next("the same agents under one budget")
        ours = run_agentcast(system, model, args.down_for)
        status = system.budget.status()
        ledger = status.ledger(scope="run", spender=system.trace_id, dimension="prompt_tokens")
        breaker = status.breakers[TOOL]
        incidents = [i for i in status.incidents if i.dependency == TOOL]
        retries = status.retries
    print(_line("naive", naive))
    print(_line("agentcast", ours))
    spent = ledger.committed + ledger.outstanding
    seen_by = len(incidents[0].agents) if incidents else 0
    print(f"agentcast  breaker on {TOOL}: {breaker.status.value}; error registry: "
          f"{len(incidents)} incident(s) seen by {seen_by} agent(s); run prompt tokens "
          f"committed + reserved: {spent:,.0f} of {ledger.cap:,.0f}")  # fmt: skip
    print(f"agentcast  retries: {retries.get('ok', 0)} allowed, {retries.get('retry_budget', 0)} "
          f"refused by the run's retry budget, {retries.get('circuit_open', 0)} refused "
          "because the breaker was open")  # fmt: skip
    naive_tokens, our_tokens = sum(r.tokens for r in naive), sum(r.tokens for r in ours)
    print(f"ratio: naive spent {naive_tokens / max(1, our_tokens):.1f}x the tokens of agentcast")
    if spent > RUN_TOKEN_CAP:
        print("agentcast: OVERSPENT the run's cap")
        return 1
    print("agentcast: spend stayed under the run's cap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
