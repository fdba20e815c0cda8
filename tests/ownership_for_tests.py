"""Resources and agents of the ownership and conflict-ladder tests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from actors import (
    Agent,
    Arbitrate,
    Negotiate,
    Position,
    Resource,
    Ruling,
    Write,
    handler,
    read,
    write,
)
from policies import ConflictSide


class Drafts(Resource):
    """Drafts by id: revisions (owned per draft), publications, and unowned notes."""

    @write(entity="draft_id")
    def revise(self, state: dict[str, Any], draft_id: str, text: str) -> int:
        draft = state.get(draft_id) or {"text": "", "rev": 0}
        state[draft_id] = {"text": text, "rev": draft["rev"] + 1}
        return int(state[draft_id]["rev"])

    @write(entity=lambda draft_id, **_: f"{draft_id}")
    def publish(self, state: dict[str, Any], draft_id: str) -> str:
        text = str((state.get(draft_id) or {}).get("text", ""))
        state[f"published:{draft_id}"] = text
        return text

    @write
    def note(self, state: dict[str, Any], text: str) -> int:
        state["notes"] = [*state.get("notes", []), text]
        return len(state["notes"])

    @write(entity="draft_id")
    def merge_revise(self, state: dict[str, Any], draft_id: str, text: str) -> int:
        draft = state.get(draft_id) or {"text": "", "rev": 0}
        state[draft_id] = {"text": f"{draft['text']}+{text}", "rev": draft["rev"] + 1}
        return int(state[draft_id]["rev"])

    @read
    def draft(self, state: dict[str, Any], draft_id: str) -> Any:
        return state.get(draft_id)


class Revise(BaseModel):
    draft_id: str
    text: str
    count: int = 1


class HandOff(BaseModel):
    entity: str
    to: str
    note: str = ""


class Claim(BaseModel):
    entity: str


class Outcomes(BaseModel):
    """Per write or change: "ok:<value>" or the error's class name."""

    results: list[str]


class Editor(Agent):
    """Writes revisions, claims and hands entities over, reporting each outcome."""

    @handler
    async def revise(self, message: Revise) -> Outcomes:
        drafts = self.resource("drafts")
        results = []
        for i in range(message.count):
            try:
                rev = await drafts.revise(message.draft_id, f"{message.text}#{i}")
                results.append(f"ok:{rev}")
            except Exception as error:
                results.append(type(error).__name__)
        return Outcomes(results=results)

    @handler
    async def hand_off(self, message: HandOff) -> Outcomes:
        try:
            record = await self.transfer(message.entity, to=message.to, handoff=message.note)
        except Exception as error:
            return Outcomes(results=[type(error).__name__])
        return Outcomes(results=[f"ok:{record.owner}:{record.task_id}"])

    @handler
    async def claim(self, message: Claim) -> Outcomes:
        try:
            record = await self.own(message.entity)
        except Exception as error:
            return Outcomes(results=[type(error).__name__])
        return Outcomes(results=[f"ok:{record.owner}", f"owner:{await self.owner(message.entity)}"])


class Attempt(BaseModel):
    resource: str
    draft_id: str
    text: str
    expected: int | None = None


class Party(Agent):
    """Writes with an expected version and takes part in the ladder: ``research`` yields
    in a negotiation, everyone else insists; the arbiter ``chief`` rules for the
    challenger, ``dunce`` cannot rule (its subtask fails and goes to a human)."""

    max_concurrency = 4  # negotiates while its own refused write waits for the outcome

    @handler
    async def attempt(self, message: Attempt) -> Outcomes:
        write = Write(op="revise", args=[message.draft_id, message.text],
                      expected_version=message.expected)  # fmt: skip
        result = await self.resource(message.resource).write(write)
        if result.error is not None:
            level = getattr(result.error, "level", "")
            return Outcomes(results=[f"{type(result.error).__name__}:{level}"])
        return Outcomes(results=[f"ok:{result.version}:{result.value}"])

    @handler
    async def negotiate(self, message: Negotiate) -> Position:
        return Position(yields=self.name == "research", note=f"round {message.round}")

    @handler
    async def arbitrate(self, message: Arbitrate) -> Ruling:
        if self.name == "dunce":
            raise RuntimeError("cannot decide")
        return Ruling(winner=ConflictSide.CHALLENGER, reason=f"{message.challenger} is newer")
