"""A half-revised draft gets published: plain Ray against agentcast's ownership.

Research, editorial and publishing agents work on one draft of three paragraphs. The
editor revises it paragraph by paragraph; while the final revision is half done, the
publisher (eager) publishes and the researcher adds a late fact. Both moments are pinned
by a start line, so the race shows on every run however the machine schedules it.

- naive: a plain Ray actor holds the draft; anyone writes at any time. The published
  text mixes revisions, and the example detects and reports it.
- agentcast: the draft is an owned entity ("drafts:d1"). Research owns it first and hands
  it to editorial, which hands it to publishing once it approves the final revision; each
  stage is a supervised subtask and each transfer names its handoff. The eager publish and
  the late fact are refused (``NotOwnerError``, logged); only the approved revision is
  published, which the example checks against the resource's log.

Run it on the embedded default:        python examples/editorial_race.py
or on a cluster:   ray job submit --working-dir . -- python examples/editorial_race.py

It exits non-zero if agentcast published anything but the approved revision.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import Any

import ray
from _progress import Steps
from pydantic import BaseModel

from actors import Agent, AgentGroup, Resource, System, handler, write

DRAFT = "d1"
ENTITY = f"drafts:{DRAFT}"
PARAGRAPHS = 3


class Drafts(Resource):
    @write(entity="draft_id")
    def set_paragraph(self, state: dict[str, Any], draft_id: str, index: int, text: str) -> int:
        draft = state.get(draft_id) or {"paragraphs": [""] * PARAGRAPHS, "facts": []}
        draft["paragraphs"][index] = text
        state[draft_id] = draft
        return index

    @write(entity="draft_id")
    def add_fact(self, state: dict[str, Any], draft_id: str, fact: str) -> int:
        draft = state.get(draft_id) or {"paragraphs": [""] * PARAGRAPHS, "facts": []}
        draft["facts"].append(fact)
        state[draft_id] = draft
        return len(draft["facts"])

    @write(entity="draft_id")
    def publish(self, state: dict[str, Any], draft_id: str) -> list[str]:
        state[f"published:{draft_id}"] = list(state[draft_id]["paragraphs"])
        return list(state[draft_id]["paragraphs"])


@ray.remote(num_cpus=0)
class NaiveDraft:
    """The draft as a plain Ray actor: whoever calls writes."""

    def __init__(self) -> None:
        self.draft: dict[str, Any] = {"paragraphs": [""] * PARAGRAPHS, "facts": []}
        self.published: list[str] | None = None

    def set_paragraph(self, draft_id: str, index: int, text: str) -> int:
        self.draft["paragraphs"][index] = text
        return index

    def add_fact(self, draft_id: str, fact: str) -> int:
        self.draft["facts"].append(fact)
        return len(self.draft["facts"])

    def publish(self, draft_id: str) -> list[str]:
        self.published = list(self.draft["paragraphs"])
        return self.published

    def published_text(self) -> list[str]:
        return self.published or []


@ray.remote(num_cpus=0)
class StartLine:
    """The editor stops half-way through its final revision until the eager publisher and
    the late researcher have both tried their write."""

    def __init__(self, parties: int) -> None:
        self.parties, self.tried = parties, 0
        self.mid, self.all_tried = asyncio.Event(), asyncio.Event()

    async def reach_mid(self) -> None:
        self.mid.set()
        await asyncio.wait_for(self.all_tried.wait(), 60)

    async def wait_mid(self) -> None:
        await asyncio.wait_for(self.mid.wait(), 60)

    def tried_once(self) -> None:
        self.tried += 1
        if self.tried >= self.parties:
            self.all_tried.set()


class Research(BaseModel):
    naive: bool


class LateFact(BaseModel):
    naive: bool


class Edit(BaseModel):
    naive: bool
    revisions: int


class Eager(BaseModel):
    naive: bool


class Publish(BaseModel):
    naive: bool


class Report(BaseModel):
    outcome: str  # "ok:<value>" or the refusal's error class


def _draft(agent: Agent, naive: bool) -> Any:
    """The draft as this run reaches it: the naive actor, or the owned resource."""
    if not naive:
        return agent.resource("drafts")
    actor = ray.get_actor("naive-draft", namespace=agent.namespace)

    class Calls:
        def __getattr__(self, op: str) -> Any:
            return lambda *args: getattr(actor, op).remote(*args)

    return Calls()


async def _attempt(agent: Agent, naive: bool, op: str, *args: Any) -> Report:
    """Wait for the editor to be half-way, try one write, tell the start line."""
    line = ray.get_actor(f"start-line-{naive}", namespace=agent.namespace)
    await line.wait_mid.remote()
    try:
        value = await getattr(_draft(agent, naive), op)(DRAFT, *args)
        report = Report(outcome=f"ok:{value}")
    except Exception as error:
        report = Report(outcome=type(error).__name__)
    await line.tried_once.remote()
    return report


class Researcher(Agent):
    max_concurrency = 2

    @handler
    async def research(self, task: Research) -> Report:
        draft = _draft(self, task.naive)
        for fact in ("founded 1921", "two offices"):
            await draft.add_fact(DRAFT, fact)
        if not task.naive:
            await self.transfer(ENTITY, to="editorial", handoff="facts checked")
        return Report(outcome="ok:facts")

    @handler
    async def late_fact(self, task: LateFact) -> Report:
        return await _attempt(self, task.naive, "add_fact", "unchecked rumour")


class Editor(Agent):
    @handler
    async def edit(self, task: Edit) -> Report:
        draft = _draft(self, task.naive)
        line = ray.get_actor(f"start-line-{task.naive}", namespace=self.namespace)
        for rev in range(1, task.revisions + 1):
            for index in range(PARAGRAPHS):
                if rev == task.revisions and index == 1:
                    await line.reach_mid.remote()  # half-way through the final revision
                await draft.set_paragraph(DRAFT, index, f"rev{rev}:p{index}")
        if not task.naive:
            await self.transfer(ENTITY, to="publishing", handoff=f"approved rev{task.revisions}")
        return Report(outcome=f"ok:rev{task.revisions}")


class Publisher(Agent):
    max_concurrency = 2

    @handler
    async def eager(self, task: Eager) -> Report:
        return await _attempt(self, task.naive, "publish")

    @handler
    async def publish(self, task: Publish) -> Report:
        return Report(outcome=f"ok:{await _draft(self, task.naive).publish(DRAFT)}")


def half_revised(paragraphs: list[str]) -> bool:
    return len({p.split(":")[0] for p in paragraphs}) > 1


def run_naive(system: System, groups: dict[str, AgentGroup], revisions: int) -> list[str]:
    """Three agents on one plain Ray actor; returns what the eager publisher published."""
    ns = system.namespace
    store = NaiveDraft.options(name="naive-draft", namespace=ns).remote()
    line = StartLine.options(name="start-line-True", namespace=ns).remote(2)
    ray.get(groups["research"].call(Research(naive=True)))
    racing = [groups["publishing"].call(Eager(naive=True)),
              groups["research"].call(LateFact(naive=True))]  # fmt: skip
    ray.get(groups["editorial"].call(Edit(naive=True, revisions=revisions)))
    ray.get(racing)
    published: list[str] = ray.get(store.published_text.remote())
    for actor in (store, line):
        ray.kill(actor)
    return published


def run_agentcast(
    system: System, groups: dict[str, AgentGroup], revisions: int
) -> tuple[list[str], list[str]]:
    """The same three agents on an owned draft, stage by stage; returns what was
    published and the refusals the racing writes got."""
    supervisor, limit = system.supervisor, timedelta(seconds=60)
    line = StartLine.options(name="start-line-False", namespace=system.namespace).remote(2)
    system.ownership.own(ENTITY, by="research")
    supervisor.submit(
        Research(naive=False), to="research", expect=Report, deadline=limit,
        stage="research", next_stage="editing",
    ).result(timeout=120)  # fmt: skip
    racing = [groups["publishing"].call(Eager(naive=False)),
              groups["research"].call(LateFact(naive=False))]  # fmt: skip
    supervisor.submit(
        Edit(naive=False, revisions=revisions), to="editorial", expect=Report,
        deadline=limit, stage="editing", next_stage="publishing",
    ).result(timeout=120)  # fmt: skip
    refusals = [r.outcome for r in ray.get(racing)]
    published = supervisor.submit(
        Publish(naive=False), to="publishing", expect=Report, deadline=limit, stage="publishing"
    ).result(timeout=120)  # fmt: skip
    assert isinstance(published, Report)
    ray.kill(line)
    return _published_in_log(system), refusals


def _published_in_log(system: System) -> list[str]:
    """What the resource's log says was published (the last publish record)."""
    records = [r for r in system.log("drafts").audit() if r.op == "publish"]
    return list(records[-1].result) if records else []


def check_log(system: System, revisions: int) -> list[str]:
    """Every way the log could contradict the claim; empty when it holds."""
    problems = []
    audit = list(system.log("drafts").audit())
    history = system.ownership.history(ENTITY)
    handed = [h for h in history if h.action == "transfer" and h.owner == "publishing"]
    publishes = [r for r in audit if r.op == "publish"]
    if len(publishes) != 1 or len(handed) != 1:
        return [f"{len(publishes)} publish records and {len(handed)} handoffs to publishing"]
    (publish,), (handoff,) = publishes, handed
    if publish.writer != "publishing" or publish.version <= handoff.version:
        problems.append(f"published by {publish.writer} at v{publish.version}, before the handoff")
    if any(not p.startswith(f"rev{revisions}:") for p in publish.result):
        problems.append(f"published {publish.result}, not the approved rev{revisions}")
    refused = {
        (r.writer, r.op) for r in system.log("drafts").rejections() if r.reason == "not_owner"
    }
    if refused != {("publishing", "publish"), ("research", "add_fact")}:
        problems.append(f"refusals logged: {sorted(refused)}")
    stages = {h["subtask_id"] for h in system.supervisor.handoffs(system.trace_id)}
    if any(h.task_id not in stages for h in history if h.action == "transfer"):
        problems.append("a transfer is not linked to the handoff record of its stage")
    return problems


def _line(name: str, published: list[str]) -> str:
    flag = "YES" if half_revised(published) else "no"
    return f"{name:<10} published: {' | '.join(published):<32} half-revised: {flag}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revisions", type=int, default=2, help="revisions the editor makes")
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    revisions = max(2, args.revisions)
    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace="editorial-race") as system:
        writers = ["research", "editorial", "publishing", "system"]
        system.resource(Drafts, name="drafts", writers=writers)
        groups = {
            "research": system.agent(Researcher, name="research"),
            "editorial": system.agent(Editor, name="editorial"),
            "publishing": system.agent(Publisher, name="publishing"),
        }
        steps.next("the naive agents: anyone writes the draft")
        naive = run_naive(system, groups, revisions)
        steps.next("the same agents with one owner per draft")
        ours, refusals = run_agentcast(system, groups, revisions)
        problems = check_log(system, revisions)
    print(_line("naive", naive))
    print(_line("agentcast", ours) + f"   racing writes: {', '.join(refusals)}")
    bad = bool(problems) or half_revised(ours) or not ours
    for problem in problems:
        print(f"agentcast: {problem}")
    claim = f"only the approved rev{revisions} was published (checked against the log)"
    print(f"agentcast: {'FAILED' if bad else claim}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
