"""What the supervisor holds for each unfinished subtask, and how outputs are checked and
stored."""

from __future__ import annotations

import asyncio
import json
import pickle
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from ray import cloudpickle

from policies import Provenance
from runtime import AttemptRecord, SubtaskFailedError

from .._contracts import contract_mismatch
from .store import history
from .types import Outcome, SubtaskSpec


@dataclass(slots=True)
class Attempt:
    """One attempt of a subtask: where it runs and the supervisor-clock instants of its
    phases. ``over`` once it failed or ended: a result it sends after that is late;
    ``returned`` once its call came back (its replica slot is free again); ``recorded``
    once its number is committed (it may be sent at once)."""

    number: int
    target: str
    queued_at: float
    replica: str | None = None
    generation: int = 0
    returned: bool = False
    recorded: bool = False
    started_at: float | None = None
    heartbeat_at: float | None = None
    span_id: str = ""
    over: bool = False
    cancel: Any = None


@dataclass(slots=True)
class Live:
    """An unfinished subtask: its spec, its current attempt and its history so far;
    ``interrupted`` is the attempt that ran when an earlier supervisor stopped."""

    spec: SubtaskSpec
    target: str
    history: list[AttemptRecord]
    attempts: int = 0
    state: str = "queued"
    current: Attempt | None = None
    waiters: list[asyncio.Future[Outcome]] = field(default_factory=list)
    failed_on: set[str] = field(default_factory=set)
    escalated: bool = False
    interrupted: Attempt | None = None
    created: float = 0.0  # wall-clock seconds when it was submitted


def readable(model: BaseModel) -> str:
    """A message or output as JSON (type name and fields), for ``agentcast trace``: the
    pickled copy needs the user's classes to be read, this does not."""
    data = model.model_dump(mode="json", fallback=str)
    return json.dumps({"type": type(model).__name__, "data": data}, sort_keys=True, default=str)


def dumps(value: Any) -> bytes:
    """Pickle ``value``: plainly when it can be loaded elsewhere (several times faster),
    by value (cloudpickle) when it holds classes defined in ``__main__``."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return bytes(cloudpickle.dumps(value))  # type: ignore[no-untyped-call]
    by_value = b"__main__" in data
    return bytes(cloudpickle.dumps(value)) if by_value else data  # type: ignore[no-untyped-call]


def validate(expect: type[BaseModel] | None, output: Any) -> tuple[BaseModel | None, str]:
    """``output`` checked against ``expect``: (the model, "") or (None, why not)."""
    if output is None:
        return None, "no output"
    if expect is None:
        return (output, "") if isinstance(output, BaseModel) else (None, "not a model")
    if (mismatch := contract_mismatch(expect, output, "supervisor expect")) is not None:
        return None, str(mismatch)  # never coerced into another version of the contract
    data = output.model_dump() if isinstance(output, BaseModel) else output
    try:
        return expect.model_validate(data), ""
    except ValidationError as error:
        return None, f"output does not validate as {expect.__name__}: {error}"


def outcome_of(row: Any) -> Outcome:
    """The outcome stored in a finished subtask's row."""
    if row["state"] == "done":
        mark = Provenance(row["provenance"] or Provenance.UNVERIFIED_AGENT)  # older rows: none
        return Outcome(row["id"], cloudpickle.loads(row["output"]), None, mark)
    error = SubtaskFailedError(
        row["id"], row["reason"] or "", row["detail"] or "", history(row["attempts"])
    )
    return Outcome(row["id"], None, error)
