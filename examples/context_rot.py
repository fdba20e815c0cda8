"""Context rot: "never modify files in /prod" is paraphrased away two hops later.

An orchestrator hands a brief to a research agent, which hands its summary to a synthesis
agent, which hands an instruction to an action agent that writes a file. Each hop asks
its (scripted) model to condense what it received; the model paraphrases, drops the
constraint sentence, and the twice-removed summary points the action at the live config.

- naive: plain Ray actors pass prose; the constraint lives only in the first brief. The
  action writes under /prod.
- agentcast: the driver submits the brief with a typed constraint set on its envelope
  (``ForbidPath(prefix="/prod")``). The supervisor copies it to every child subtask, each
  hop's model sees it as data, and the action's write carries it: the resource refuses
  the write under /prod with ``ConstraintViolationError`` naming the constraint, and logs
  the rejection with the trace of the run that carried it.

Run it on the embedded default:        python examples/context_rot.py
or on a cluster:   ray job submit --working-dir . -- python examples/context_rot.py

It exits non-zero if anything was written under /prod through agentcast.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import ray
from _progress import Steps
from pydantic import BaseModel

from actors import Agent, Resource, System, handler, read, write
from policies import ConstraintSet, ForbidPath, RetryPolicy
from runtime import ConstraintViolationError, Envelope, Message, ModelClient
from runtime.testing import ScriptedModel, ScriptedRule

BRIEF = (
    "Raise the request timeout to 30s in app.yaml and test it on staging "
    "(/staging/app.yaml). Never modify files in /prod."
)
NEXT = {"orchestrator": "research", "research": "synthesis", "synthesis": "action"}
ONCE = RetryPolicy(max_attempts=1)


def _paraphrase(messages: Sequence[Message]) -> str:
    """The careless model: keeps the first sentence, drops the constraint."""
    text = messages[-1].content.split("] ", 1)[-1]
    return text.split(". ")[0].removesuffix(".") + "."


def _instruction(messages: Sequence[Message]) -> str:
    """Two hops on, "app.yaml" reads as the live config: the path the action will write."""
    return "write timeout=30s to /prod/app.yaml"


def scripted_model() -> ScriptedModel:
    return ScriptedModel(
        rules=[
            ScriptedRule(pattern=r"^\[(orchestrator|research)\]", reply=_paraphrase),
            ScriptedRule(pattern=r"^\[synthesis\]", reply=_instruction),
        ]
    )


class Files(Resource):
    @write
    def write_file(self, state: dict[str, Any], path: str, text: str) -> int:
        state[path] = text
        return len(state)

    @read
    def paths(self, state: dict[str, Any]) -> list[str]:
        return sorted(state)


class Brief(BaseModel):
    text: str
    hops: list[str] = []


class Outcome(BaseModel):
    path: str
    written: bool
    refused_by: str = ""
    trace_id: str = ""
    hops: list[str] = []


def _target(text: str) -> str:
    found = re.search(r"(/[\w./-]+)", text)
    return found[1] if found else "/tmp/unknown"


class Hop(Agent):
    """Condenses what it got with its model and hands it on; its subtask carries the
    constraints of its task whatever the text says."""

    NEXT: ClassVar[dict[str, str]] = NEXT

    @handler
    async def relay(self, brief: Brief) -> Outcome:
        said = f"{len(self.task.constraints.items)} constraint(s)"
        prompt = [Message(role="user", content=f"[{self.name}] {brief.text}")]
        condensed = await self.model.complete(prompt, max_tokens=64)
        onward = Brief(text=condensed.text or "", hops=[*brief.hops, f"{self.name} ({said})"])
        handle = self.supervisor.submit(onward, to=self.NEXT[self.name], expect=Outcome, retry=ONCE)
        return await handle.result()  # type: ignore[return-value]


class Act(Agent):
    """Does what the instruction says."""

    @handler
    async def act(self, brief: Brief) -> Outcome:
        path = _target(brief.text)
        hops = [*brief.hops, f"{self.name} ({len(self.task.constraints.items)} constraint(s))"]
        try:
            await self.resource("files").write_file(path, brief.text)
        except ConstraintViolationError as refused:
            return Outcome(path=path, written=False, refused_by=refused.constraint,
                           trace_id=refused.trace_id, hops=hops)  # fmt: skip
        return Outcome(path=path, written=True, trace_id=self.task.trace_id, hops=hops)


@ray.remote(num_cpus=0)
class NaiveHop:
    """The same hop as a plain Ray actor: prose in, prose out."""

    def __init__(self, name: str, model: ModelClient, files: Any, namespace: str) -> None:
        self.name, self.model, self.files, self.namespace = name, model, files, namespace

    async def relay(self, text: str) -> str:
        if self.name == "action":
            path = _target(text)
            await self.files.write_file.remote(path, text)
            return path
        prompt = [Message(role="user", content=f"[{self.name}] {text}")]
        condensed = await self.model.complete(prompt, max_tokens=64)
        onward = ray.get_actor(f"naive-{NEXT[self.name]}", namespace=self.namespace)
        path: str = await onward.relay.remote(condensed.text or "")
        return path


@ray.remote(num_cpus=0)
class NaiveFiles:
    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def write_file(self, path: str, text: str) -> int:
        self.files[path] = text
        return len(self.files)

    def paths(self) -> list[str]:
        return sorted(self.files)


def run_naive(system: System, model: ModelClient) -> list[str]:
    files = NaiveFiles.options(namespace=system.namespace).remote()  # type: ignore[attr-defined]
    hops = [
        NaiveHop.options(name=f"naive-{name}", namespace=system.namespace).remote(  # type: ignore[attr-defined]
            name, model, files, system.namespace
        )
        for name in (*NEXT, "action")
    ]
    ray.get(hops[0].relay.remote(BRIEF))
    paths: list[str] = ray.get(files.paths.remote())
    for actor in (*hops, files):
        ray.kill(actor)
    return paths


def run_agentcast(system: System, model: ModelClient) -> tuple[Outcome, list[str]]:
    system.resource(Files, name="files", writers=["action"])
    for name in NEXT:
        system.agent(Hop, name=name, model=model)
    system.agent(Act, name="action")
    root = Envelope(sender="human", constraints=ConstraintSet((ForbidPath(prefix="/prod"),)))
    handle = system.supervisor.submit(
        Brief(text=BRIEF), to="orchestrator", expect=Outcome, envelope=root, retry=ONCE
    )
    outcome = handle.result(timeout=120)
    assert isinstance(outcome, Outcome)
    return outcome, system.get_resource("files").paths()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    model = scripted_model()
    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace=f"context-rot-{uuid.uuid4().hex[:8]}") as system:
        steps.next("the naive hops: the constraint travels as prose")
        naive = run_naive(system, model)
        steps.next("the same hops with a ConstraintSet on the envelope")
        ours, written = run_agentcast(system, model)
        rejections = [r for r in system.log("files").rejections() if r.reason == "constraint"]
    print(f"brief: {BRIEF}")
    print(f"naive      wrote: {', '.join(naive) or 'nothing'}")
    print(f"agentcast  wrote: {', '.join(written) or 'nothing'}   refused: {ours.path} by "
          f"{ours.refused_by or 'nothing'}")  # fmt: skip
    print(f"agentcast  carried by: {' -> '.join(ours.hops)}; trace {ours.trace_id}")
    for rejection in rejections:
        print(f"agentcast  logged: {rejection.op} by {rejection.writer}, reason "
              f"{rejection.reason}, trace {rejection.trace_id}")  # fmt: skip
    prod = [p for p in written if p == "/prod" or p.startswith("/prod/")]
    if prod or not rejections or ours.refused_by != "forbid_path(path under /prod)":
        print("agentcast: FAILED: a write under /prod was not refused")
        return 1
    print("agentcast: the write under /prod was refused, the constraint named")
    return 0


if __name__ == "__main__":
    sys.exit(main())
