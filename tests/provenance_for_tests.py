"""A report desk whose publish write requires VERIFIED input, for the provenance tests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from actors import (
    Agent,
    Claim,
    Provenance,
    Resource,
    Verdict,
    VerifyClaims,
    check_claims,
    handler,
    read,
    write,
)
from actors._agent.derived import derived
from runtime import Message, ProvenanceError


class Reports(Resource):
    """Drafts anyone may write; a published figure needs VERIFIED provenance, which the
    resource believes only from the system and from the declared ``checker``."""

    vouchers = {"checker": Provenance.VERIFIED}

    @write
    def draft(self, state: dict[str, Any], key: str, figure: float) -> float:
        state[f"draft:{key}"] = figure
        return figure

    @write(requires=Provenance.VERIFIED)
    def publish(self, state: dict[str, Any], key: str, figure: float) -> float:
        state[f"published:{key}"] = figure
        return figure

    @read
    def get(self, state: dict[str, Any], key: str) -> Any:
        return state.get(key)


class Stats(Resource):
    """The primary source: figures the driver (the system) wrote."""

    @write
    def set(self, state: dict[str, Any], name: str, value: float) -> float:
        state[name] = value
        return value

    @read
    def figures(self, state: dict[str, Any]) -> dict[str, Any]:
        return dict(state)


class Ask(BaseModel):
    key: str


class Drafted(BaseModel):
    key: str
    figure: float
    published: bool
    refusal: str = ""
    derived: str = ""


class Researcher(Agent):
    """Asks its model for a figure, drafts it, and tries to publish it itself."""

    @handler
    async def research(self, ask: Ask) -> Drafted:
        reply = await self.model.complete(
            [Message(role="user", content=f"figure {ask.key}")], max_tokens=8
        )
        figure = float(reply.text or "nan")
        reports = self.resource("reports")
        await reports.draft(ask.key, figure)
        mark = derived()
        try:
            await reports.publish(ask.key, figure)
        except ProvenanceError as refused:
            return Drafted(key=ask.key, figure=figure, published=False, refusal=str(refused),
                           derived=mark)  # fmt: skip
        return Drafted(key=ask.key, figure=figure, published=True, derived=mark)


class Delegator(Agent):
    """Reads a draft, then hands it to a stage that requires VERIFIED input."""

    @handler
    async def delegate(self, ask: Ask) -> Drafted:
        figure = (await self.resource("reports").read("get", f"draft:{ask.key}")).value
        try:
            self.supervisor.submit(ask, to="research", requires=Provenance.VERIFIED)
        except ProvenanceError as refused:
            return Drafted(key=ask.key, figure=figure, published=False, refusal=str(refused),
                           derived=derived())  # fmt: skip
        return Drafted(key=ask.key, figure=figure, published=True, derived=derived())


class Checker(Agent):
    """The verifier: checks claims against the stats resource, publishes what holds."""

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


class Growth(BaseModel):
    """A stage's output: each field is a claim its verifier checks."""

    q3: float


class Fabricates:
    """A model that makes a figure up once, then gives the true one."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, messages: Any) -> str:
        self.calls += 1
        return "7.3" if self.calls == 1 else "4.2"


class Drafter(Agent):
    """Drafts the figure its model gives: unverified output."""

    @handler
    async def draft(self, ask: Ask) -> Growth:
        reply = await self.model.complete([Message(role="user", content=ask.key)], max_tokens=8)
        return Growth(q3=float(reply.text or "nan"))


class Auditor(Agent):
    """A stage's verifier: checks claims against the stats resource, vouches if all hold."""

    verifier = True

    @handler
    async def check(self, request: VerifyClaims) -> Verdict:
        truth = (await self.resource("stats").read("figures")).value
        verdict = check_claims(request, truth.__getitem__)
        if verdict.verified:
            self.vouch("resource:stats")
        return verdict


class Publisher(Agent):
    """The publish stage: passes the figure on."""

    @handler
    async def publish(self, growth: Growth) -> Growth:
        return growth


class Asked(BaseModel):
    verified: bool
    detail: str
    derived: str


class AsksTheVerifier(Agent):
    """Asks a verifier itself (``self.supervisor.verify``), then uses a tool."""

    @handler
    async def ask(self, ask: Ask) -> Asked:
        claims = [Claim(name=ask.key, value=7.3, claimed_by=self.name)]
        handle = self.supervisor.verify("draft", claims, verifier="auditor")
        verdict = await handle.result(timeout=60)
        assert isinstance(verdict, Verdict)
        async with self.budget.guard("search"):
            pass
        return Asked(verified=verdict.verified, detail=verdict.detail, derived=derived())


class UsesATool(Agent):
    """Handles a driver's task with one tool call and nothing else."""

    @handler
    async def use(self, ask: Ask) -> Asked:
        before = derived()
        async with self.budget.guard("search"):
            pass
        return Asked(verified=False, detail=str(before), derived=derived())
