"""A fabricated figure gets published: plain Ray against agentcast's provenance.

A research agent asks its model for two figures; the model gets one right (q3 revenue
12.5) and fabricates the other (q3 growth 73.0; the books say 4.2). A synthesis agent
builds a report on both and, eager, publishes it.

- naive: the report is a plain Ray actor; the figures travel as plain values, and the
  fabricated one is published with the same authority as the true one.
- agentcast: every figure the research agent derives from its model is marked
  agent-unverified, and the synthesis agent that read it inherits the mark. The report's
  ``publish`` write requires VERIFIED, so the eager publish is refused
  (``ProvenanceError``, logged). The supervisor runs the verifier agent on the publish
  stage: it checks each claim against the primary source (the ``stats`` resource the
  system wrote), catches the fabricated figure, and publishes only what it verified (the
  resource believes VERIFIED only from the declared verifier). The example checks this
  against the resource's log and the supervisor's records.

Run it on the embedded default:        python examples/trust_collapse.py
or on a cluster:   ray job submit --working-dir . -- python examples/trust_collapse.py

It exits non-zero if agentcast published a figure its verifier did not check, or missed
the fabricated one.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

import ray
from _progress import Steps
from pydantic import BaseModel

from actors import (
    Agent,
    Claim,
    Provenance,
    Resource,
    System,
    Verdict,
    VerifyClaims,
    check_claims,
    handler,
    read,
    write,
)
from runtime import Message, ProvenanceError, ScriptedModel, ScriptedRule

TRUTH = {"q3_revenue": 12.5, "q3_growth": 4.2}  # the books: the primary source
MODEL = ScriptedModel(
    rules=[ScriptedRule(pattern="q3_revenue", reply="12.5"),
           ScriptedRule(pattern="q3_growth", reply="73.0")],  # fabricated
)  # fmt: skip


class Stats(Resource):
    """The primary source, written by the system."""

    @write
    def record(self, state: dict[str, Any], name: str, value: float) -> float:
        state[name] = value
        return value

    @read
    def figures(self, state: dict[str, Any]) -> dict[str, Any]:
        return dict(state)


class Reports(Resource):
    """Drafts anyone writes; publishing needs VERIFIED figures, believed only from the
    verifier."""

    vouchers = {"checker": Provenance.VERIFIED}

    @write
    def draft(self, state: dict[str, Any], name: str, value: float) -> float:
        state[f"draft:{name}"] = value
        return value

    @write(requires=Provenance.VERIFIED)
    def publish(self, state: dict[str, Any], name: str, value: float) -> float:
        state[f"published:{name}"] = value
        return value

    @read
    def published(self, state: dict[str, Any]) -> dict[str, Any]:
        return {k.split(":", 1)[1]: v for k, v in state.items() if k.startswith("published:")}


@ray.remote(num_cpus=0)
class NaiveReport:
    """The report as a plain Ray actor: whatever arrives is published."""

    def __init__(self) -> None:
        self.published: dict[str, float] = {}

    def publish(self, name: str, value: float) -> None:
        self.published[name] = value

    def read(self) -> dict[str, float]:
        return dict(self.published)


class Ask(BaseModel):
    names: list[str]


class Findings(BaseModel):
    figures: dict[str, float]


class Synthesize(BaseModel):
    figures: dict[str, float]
    naive: bool


class Report(BaseModel):
    published: list[str]
    refused: list[str]


class Researcher(Agent):
    @handler
    async def research(self, ask: Ask) -> Findings:
        figures = {}
        for name in ask.names:
            reply = await self.model.complete(
                [Message(role="user", content=f"What was {name}?")], max_tokens=8
            )
            figures[name] = float(reply.text or "nan")
        return Findings(figures=figures)


class Synthesizer(Agent):
    """Builds the report on the findings and publishes it at once (eager)."""

    @handler
    async def synthesize(self, task: Synthesize) -> Report:
        if task.naive:
            report = ray.get_actor("naive-report", namespace=self.namespace)
            for name, value in task.figures.items():
                await report.publish.remote(name, value)
            return Report(published=sorted(task.figures), refused=[])
        reports, refused = self.resource("reports"), []
        for name, value in task.figures.items():
            await reports.draft(name, value)
            try:
                await reports.publish(name, value)
            except ProvenanceError:
                refused.append("ProvenanceError")
        return Report(published=[], refused=refused)


class Checker(Agent):
    """The verifier: checks each claim against the stats, publishes what holds."""

    verifier = True

    @handler
    async def check(self, request: VerifyClaims) -> Verdict:
        truth = (await self.resource("stats").read("figures")).value
        verdict = check_claims(request, truth.__getitem__)
        if verdict.verified:
            self.vouch("resource:stats")
            for claim in request.claims:
                await self.resource("reports").publish(claim.name, claim.value)
        return verdict


def run_naive(system: System) -> dict[str, float]:
    report = NaiveReport.options(name="naive-report", namespace=system.namespace).remote()
    findings = system.supervisor.submit(
        Ask(names=sorted(TRUTH)), to="research", expect=Findings
    ).result(timeout=120)
    assert isinstance(findings, Findings)
    system.supervisor.submit(
        Synthesize(figures=findings.figures, naive=True), to="synthesis", expect=Report
    ).result(timeout=120)
    published: dict[str, float] = ray.get(report.read.remote())
    ray.kill(report)
    return published


def run_agentcast(system: System) -> tuple[dict[str, float], list[str], list[Verdict]]:
    """The same pipeline with provenance: returns what was published, the refusals of
    the eager publish, and the verifier's verdicts (one subtask per claim)."""
    supervisor, limit = system.supervisor, timedelta(seconds=60)
    findings = supervisor.submit(
        Ask(names=sorted(TRUTH)), to="research", expect=Findings, deadline=limit,
        stage="research", next_stage="synthesis",
    ).result(timeout=120)  # fmt: skip
    assert isinstance(findings, Findings)
    report = supervisor.submit(
        Synthesize(figures=findings.figures, naive=False), to="synthesis", expect=Report,
        deadline=limit, stage="synthesis", next_stage="publish",
    ).result(timeout=120)  # fmt: skip
    assert isinstance(report, Report)
    verdicts = []
    for name, value in sorted(findings.figures.items()):
        claim = Claim(name=name, value=value, claimed_by="research")
        verdict = supervisor.verify("publish", [claim], verifier="checker", deadline=limit)
        verdicts.append(verdict.result(timeout=120))
    published = system.resource(Reports, name="reports").read("published").value
    return published, report.refused, [v for v in verdicts if isinstance(v, Verdict)]


def check_log(system: System) -> list[str]:
    """Every way the log could contradict the claim; empty when it holds."""
    problems = []
    publishes = [r for r in system.log("reports").audit() if r.op == "publish"]
    if [(r.args[0], r.args[1], r.writer, r.provenance) for r in publishes] != [
        ("q3_revenue", 12.5, "checker", "verified")
    ]:
        problems.append(f"publish records: {[(r.args, r.writer) for r in publishes]}")
    refused = [(r.writer, r.op, r.reason) for r in system.log("reports").rejections()]
    if refused != [("synthesis", "publish", "provenance")] * 2:
        problems.append(f"refusals logged: {refused}")
    stages = [h["stage"] for h in system.supervisor.handoffs(system.trace_id)]
    if stages.count("verify:publish") != 2:
        problems.append(f"verifier verdicts recorded: {stages.count('verify:publish')}, not 2")
    return problems


def _fabricated(published: dict[str, float]) -> list[str]:
    return sorted(name for name, value in published.items() if value != TRUTH[name])


def _line(name: str, published: dict[str, float]) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(published.items())) or "nothing"
    flag = "YES" if _fabricated(published) else "no"
    return f"{name:<10} published: {shown:<36} fabricated: {flag}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", default=None, help="storage folder (default ./.agentcast)")
    args = parser.parse_args(argv)
    steps = Steps(3)
    steps.next("starting Ray")
    with System.start(args.storage, namespace="trust-collapse") as system:
        stats = system.resource(Stats, name="stats")
        for name, value in TRUTH.items():
            stats.record(name, value)
        system.resource(Reports, name="reports")
        system.agent(Researcher, name="research", model=MODEL)
        system.agent(Synthesizer, name="synthesis")
        system.agent(Checker, name="checker")
        steps.next("the naive pipeline: a fabricated figure published")
        naive = run_naive(system)
        steps.next("the same pipeline with provenance and a verifier")
        ours, refused, verdicts = run_agentcast(system)
        problems = check_log(system)
    caught = [line for v in verdicts for line in v.detail.split("; ") if not v.verified]
    print(_line("naive", naive))
    print(_line("agentcast", ours) + f"   eager publish: {', '.join(refused) or 'applied'}")
    print(f"verifier   caught: {'; '.join(caught) or 'nothing'}")
    bad = bool(problems) or bool(_fabricated(ours)) or not ours or len(caught) != 1
    for problem in problems:
        print(f"agentcast: {problem}")
    claim = "the fabricated figure was caught; only verified figures were published"
    print(f"agentcast: {'FAILED' if bad else claim + ' (checked against the log)'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
