"""Orphaned subtasks: an orchestrator fans out research to four agents, some of which fail.

20 research subtasks go to 4 agents (subtask ``tNN`` to agent ``NN % 4`` first). The agents
ask a scripted model and note their finding in a shared log. Things go wrong the way they
do in the field: agent 1 and agent 2 each hang once (their model never answers), a few
answers are cut off at the context limit (``t13`` on every agent) and fail the output
schema, agent 3 answers ``t07`` long after its deadline and dies in the middle of ``t15``.

Naively (plain Ray), the orchestrator calls the agents, collects what comes back within
its timeout, re-sends once what did not, and carries on. Through agentcast, each subtask
is held to deadlines by phase and to the output schema, and a failed attempt is rerouted
to another agent or abandoned with a typed reason. For each, the example counts what the
orchestrator would not notice: subtasks silently lost, counted as done with a bad output,
or done twice (the shared log, where every write carries its idempotency key, is the
ground truth).

Run it on the embedded default:        python examples/orphaned_subtasks.py
or on a cluster:   ray job submit --working-dir . -- python examples/orphaned_subtasks.py

It exits non-zero if agentcast lost a subtask, accepted a bad output or did one twice.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

import ray
from _progress import Steps
from pydantic import BaseModel, Field, ValidationError

from actors import Agent, Resource, SubtaskHandle, System, handler, read, write
from policies import BreakerPolicy, BudgetPolicy, Deadlines, Reroute, RetryPolicy
from runtime import Message, ModelClient, ScriptedModel, ScriptedRule, SubtaskFailedError

AGENTS = 4
SUBTASKS = 20
DIES_ON = ("t15", 3)  # agent 3 dies in the middle of t15
HANGS = (("t01", 1), ("t06", 2))
LATE = ("t07", 3)
TRUNCATED = (("t05", 1), ("t10", 2), ("t12", 0), ("t13", None))  # None: on every agent
MAX_TOKENS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """How long things take, in seconds."""

    latency: float = 0.05  # a healthy model call
    late: float = 1.5  # the answer that comes after its deadline
    hang: float = 2.0  # a hung model call gives up after this
    running: float = 0.8  # agentcast: the running deadline of an attempt
    queued: float = 3.0  # agentcast: how long an attempt may wait for its agent
    naive_wait: float = 1.0  # naive: how long the orchestrator waits for each round

    def scaled(self, factor: float) -> Timing:
        return Timing(**{f.name: getattr(self, f.name) * factor for f in fields(self)})


class Research(BaseModel):
    topic: str


class Draft(BaseModel):
    """What an agent hands back: any text it got."""

    topic: str
    summary: str
    sources: list[str]


class Findings(BaseModel):
    """What the orchestrator needs: a real summary with its sources."""

    topic: str
    summary: str = Field(min_length=30)
    sources: list[str] = Field(min_length=1)


class Notes(Resource):
    """The shared log the research agents write to (one note per finding)."""

    @write
    def note(self, state: dict[str, int], topic: str) -> int:
        state[topic] = state.get(topic, 0) + 1
        return state[topic]

    @read
    def count(self, state: dict[str, int], topic: str) -> int:
        return state.get(topic, 0)


def _reply(messages: Sequence[Message]) -> str:
    topic = messages[-1].content.rsplit(" ", 1)[-1]
    return (
        f"{topic}: three surveys and a field study agree on the main effect, with caveats. "
        f"Sources: https://a.example/{topic}; https://b.example/{topic}"
    )


def scripted_model(timing: Timing) -> ScriptedModel:
    """The agents' model: replies by rule on ``agent <i>: research <topic>``."""
    rules = [ScriptedRule(pattern=rf"^agent {a}: research {t}$", hang=True) for t, a in HANGS]
    rules.append(
        ScriptedRule(
            pattern=rf"^agent {LATE[1]}: research {LATE[0]}$",
            reply=_reply,
            latency=timedelta(seconds=timing.late),
        )
    )
    for topic, agent in TRUNCATED:
        who = r"\d+" if agent is None else str(agent)
        pattern = rf"^agent {who}: research {topic}$"
        rules.append(ScriptedRule(pattern=pattern, reply=_reply, truncate_after=6))
    return ScriptedModel(
        rules=rules,
        default_reply=_reply,
        latency=timedelta(seconds=timing.latency),
        timeout=timedelta(seconds=timing.hang),
    )


async def research(
    model: ModelClient, agent: int, topic: str, note: Callable[[str], Awaitable[Any]]
) -> Draft:
    """One research subtask: ask the model, note the finding, hand back a draft."""
    prompt = Message(role="user", content=f"agent {agent}: research {topic}")
    completion = await model.complete([prompt], max_tokens=MAX_TOKENS)
    if (topic, agent) == DIES_ON:
        os._exit(1)  # the process dies mid-task
    summary, _, tail = (completion.text or "").partition(" Sources: ")
    await note(topic)
    return Draft(topic=topic, summary=summary, sources=[s for s in tail.split("; ") if s])


class NaiveNotes:
    """The shared log, plain Ray: appends every note it gets."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, int]] = []

    def note(self, topic: str, agent: int) -> None:
        self.notes.append((topic, agent))

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for topic, _ in self.notes:
            found[topic] = found.get(topic, 0) + 1
        return found


class NaiveResearcher:
    """A plain Ray actor running the same research, one subtask at a time."""

    def __init__(self, model: ModelClient, notes: Any, agent: int) -> None:
        self._model, self._notes, self._agent = model, notes, agent

    async def research(self, task: Research) -> Draft:
        async def note(topic: str) -> None:
            await self._notes.note.remote(topic, self._agent)

        return await research(self._model, self._agent, task.topic, note)

    async def idle(self) -> None:
        """Answers once every call sent before it has ended (one call at a time)."""


class Researcher(Agent):
    """The same research on agentcast: the note goes to the ``notes`` resource."""

    @handler
    async def research(self, task: Research) -> Draft:
        notes = self.resource("notes")
        return await research(self.model, self.replica, task.topic, notes.note)


@dataclass
class Tally:
    """What one mode's orchestrator ended with, against the ground truth."""

    name: str
    outputs: dict[str, BaseModel] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # explicit, typed failures
    effects: dict[str, int] = field(default_factory=dict)  # notes in the log, by topic
    stories: dict[str, str] = field(default_factory=dict)

    @property
    def lost(self) -> list[str]:
        return [t for t in topics() if t not in self.outputs and t not in self.failed]

    @property
    def bad(self) -> list[str]:
        return [t for t, out in self.outputs.items() if not _valid(out)]

    @property
    def twice(self) -> list[str]:
        return [t for t, n in self.effects.items() if n > 1]

    def line(self) -> str:
        done = len(self.outputs) - len(self.bad)
        line = (
            f"{self.name:<10} silently lost: {len(self.lost):>3}   accepted with bad output: "
            f"{len(self.bad):>3}   done twice: {len(self.twice):>3}   done: {done}/{SUBTASKS}"
        )
        return line + (f"   failed explicitly: {len(self.failed)}" if self.failed else "")


def _valid(output: BaseModel) -> bool:
    try:
        Findings.model_validate(output.model_dump())
    except ValidationError:
        return False
    return True


def topics() -> list[str]:
    return [f"t{i:02d}" for i in range(SUBTASKS)]


def _collect(tally: Tally, refs: dict[str, Any], wait_s: float) -> list[str]:
    """Naive collection: what came back in time is accepted; the rest is returned."""
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=wait_s)
    done = set(ready)
    missing = []
    for topic, ref in refs.items():
        if ref not in done:
            missing.append(topic)
            tally.stories[topic] = tally.stories.get(topic, "") + f"no reply in {wait_s:.1f} s; "
            continue
        try:
            tally.outputs[topic] = ray.get(ref)
            tally.stories[topic] = tally.stories.get(topic, "") + "accepted"
        except Exception as error:  # the naive orchestrator logs it and moves on
            missing.append(topic)
            kind = type(error).__name__.replace("RayTaskError(", "").rstrip(")")
            tally.stories[topic] = tally.stories.get(topic, "") + f"{kind}; "
    return missing


def run_naive(model: ModelClient, timing: Timing) -> Tally:
    tally = Tally("naive")
    notes = ray.remote(NaiveNotes).options(num_cpus=0).remote()
    cls = ray.remote(NaiveResearcher).options(num_cpus=0, max_concurrency=1, max_restarts=0)
    agents = [cls.remote(model, notes, i) for i in range(AGENTS)]
    ray.get([a.idle.remote() for a in agents])  # started, as agentcast's agents are
    first = {t: agents[i % AGENTS].research.remote(Research(topic=t)) for i, t in _numbered()}
    missing = _collect(tally, first, timing.naive_wait)
    again = {}
    for topic in missing:  # re-send once to the next agent, as a retry on timeout
        agent = (int(topic[1:]) + 1) % AGENTS
        tally.stories[topic] += f"re-sent to agent {agent}; "
        again[topic] = agents[agent].research.remote(Research(topic=topic))
    lost = _collect(tally, again, timing.naive_wait) if again else []
    for topic in lost:
        tally.stories[topic] += "given up (nobody is told)"
    _wait_idle([agent.idle for agent in agents], timing)
    tally.effects = ray.get(notes.counts.remote())
    for topic in tally.bad:
        tally.stories[topic] += " a truncated answer"
    for topic in tally.twice:
        tally.stories[topic] += f"; noted {tally.effects[topic]} times"
    tally.stories = {t: s for t, s in tally.stories.items() if s != "accepted"}
    for actor in (*agents, notes):
        ray.kill(actor)
    return tally


def _submit(system: System, timing: Timing) -> dict[str, SubtaskHandle]:
    """Fan out through the supervisor: first to the subtask's own agent, then elsewhere."""
    deadlines = Deadlines(
        queued=timedelta(seconds=timing.queued), running=timedelta(seconds=timing.running)
    )
    now = RetryPolicy(max_attempts=3, initial_backoff=timedelta(0), max_backoff=timedelta(0))
    plan = Reroute(to="research", policy=now)  # then Abandon(): a typed failure
    return {
        topic: system.supervisor.submit(
            Research(topic=topic), to=f"research:{i % AGENTS}", expect=Findings,
            deadline=deadlines, on_failure=plan,
        )
        for i, topic in _numbered()
    }  # fmt: skip


def run_agentcast(system: System, model: ModelClient, timing: Timing) -> Tally:
    tally = Tally("agentcast")
    system.resource(Notes, name="notes")
    group = system.agent(Researcher, name="research", replicas=AGENTS, model=model)
    handles = _submit(system, timing)
    for topic, handle in handles.items():
        try:
            tally.outputs[topic] = handle.result(timeout=120)
        except SubtaskFailedError as error:
            cause = error.detail.rsplit("[", 1)[-1].rstrip("]") if "[" in error.detail else ""
            tally.failed[topic] = f"{error.reason}, {cause}" if cause else error.reason
        except TimeoutError:
            pass  # silently lost: counted by the tally
    _wait_idle([actor.ping for actor in group.actors], timing)  # superseded attempts end
    keys = {h.id: t for t, h in handles.items()}
    for record in system.log("notes").records():  # the key is "<subtask id>:<call index>"
        topic = keys.get(record.idem_key.rsplit(":", 1)[0])
        if topic is not None:
            tally.effects[topic] = tally.effects.get(topic, 0) + 1
    for topic, handle in handles.items():
        attempts = handle.status().attempts
        if len(attempts) > 1 or topic in tally.failed:
            tally.stories[topic] = _story(attempts, tally.failed.get(topic))
    return tally


def _wait_idle(methods: Sequence[Any], timing: Timing) -> None:
    """Wait until each agent has ended every call sent to it before (they run one at a
    time), so that the log holds every effect; a dead agent answers with an error."""
    for method in methods:
        with contextlib.suppress(Exception):
            ray.get(method.remote(), timeout=timing.hang * 10)


def _numbered() -> list[tuple[int, str]]:
    return list(enumerate(topics()))


def _story(attempts: Sequence[Any], failure: str | None) -> str:
    steps = [
        f"{a.outcome} on {a.replica}" if a.replica else f"{a.outcome} (queued)" for a in attempts
    ]
    return " -> ".join(steps) + (f"; failed: {failure}" if failure else "")


def budget_policy() -> BudgetPolicy:
    """Hung model calls time out on two agents: keep the model's breaker out of this story."""
    return BudgetPolicy(breaker=BreakerPolicy(failure_threshold=1_000), block_after_agents=1_000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a faster run (shorter times)")
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    timing = Timing().scaled(0.6) if args.quick else Timing()
    model = scripted_model(timing)
    namespace = f"orphaned-{uuid.uuid4().hex[:8]}"
    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace=namespace, budgets=budget_policy()) as system:
        print(f"{SUBTASKS} research subtasks on {AGENTS} agents: 2 hang, "
              f"{len(TRUNCATED)} answers truncated, agent {DIES_ON[1]} answers {LATE[0]} "
              f"after its deadline and dies in {DIES_ON[0]}")  # fmt: skip
        print(f"namespace {system.namespace}; watch it: {system.watch_commands()[0]}")
        steps.next("the naive orchestrator")
        naive = run_naive(model, timing)
        steps.next("the same subtasks under the supervisor")
        ours = run_agentcast(system, model, timing)
    print(naive.line())
    print(ours.line())
    for tally in (naive, ours):
        for topic in sorted(tally.stories):
            print(f"{tally.name:<10} {topic}: {tally.stories[topic]}")
    bad = ours.lost or ours.bad or ours.twice
    print("agentcast: FAILED" if bad else "agentcast: no subtask lost, no bad output accepted, "
          "no effect applied twice")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
