"""The stored form of a submission, and the stage's provenance requirement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

from pydantic import BaseModel

from policies import Deadlines, OnFailure, Provenance, Retry, RetryBudget, RetryPolicy
from runtime import ConfigurationError, Envelope, ProvenanceError

from .types import SubtaskSpec

DEFAULT_VERIFY = timedelta(seconds=60)
"""The running deadline of a verification when its stage names none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StageRule:
    """What a declared stage asks of its input and its output.

    Attributes:
        requires: the weakest provenance of input the stage accepts; None accepts any.
        verifier: the agent that checks every output of the stage; None releases
            outputs unchecked.
        verify_within: the running deadline of each verification. Default 60 s.
    """

    requires: Provenance | None = None
    verifier: str | None = None
    verify_within: timedelta = DEFAULT_VERIFY

    def __post_init__(self) -> None:
        """Check the rule's fields.

        Raises:
            ConfigurationError: a requirement that is not a ``Provenance``, a verifier
                that is not an agent name, or a verification deadline that is not positive.
        """
        if self.requires is not None and not isinstance(self.requires, Provenance):
            raise ConfigurationError(f"requires must be a Provenance, not {self.requires!r}")
        if self.verifier is not None and not (isinstance(self.verifier, str) and self.verifier):
            raise ConfigurationError(f"verifier must be an agent name, not {self.verifier!r}")
        if not isinstance(self.verify_within, timedelta) or self.verify_within <= timedelta(0):
            raise ConfigurationError(f"verify_within must be positive, not {self.verify_within}")


class SubmitOptions(TypedDict, total=False):
    """The options of a submission, the same on every face that submits
    (``Supervisor.submit``/``submit_many``, ``AsyncSupervisor.submit``/``submit_many``):
    see ``Supervisor.submit``. Each is None (the default) unless given."""

    expect: type[BaseModel] | None
    deadline: Deadlines | timedelta | None
    retry: RetryPolicy | None
    on_failure: OnFailure | None
    stage: str | None
    next_stage: str | None
    run: str | None
    retry_budget: RetryBudget | None
    requires: Provenance | None


def make_spec(
    task: BaseModel,
    *,
    to: str,
    envelope: Envelope,
    expect: type[BaseModel] | None = None,
    deadline: Deadlines | timedelta | None = None,
    retry: RetryPolicy | None = None,
    on_failure: OnFailure | None = None,
    parent: str | None = None,
    stage: str | None = None,
    next_stage: str | None = None,
    run: str | None = None,
    retry_budget: RetryBudget | None = None,
    requires: Provenance | None = None,
) -> SubtaskSpec:
    """The stored form of a submission. ``retry`` alone means ``Retry(policy=retry)``;
    with a non-``Retry`` ``on_failure`` it means "retry like this, then ``on_failure``".
    ``run``, ``retry_budget``: see ``SubtaskSpec``; ``requires``: ``check_requirement``.

    Raises:
        ConfigurationError: both ``retry`` and a ``Retry`` plan are given.
        ProvenanceError: the envelope's provenance is weaker than ``requires``.
    """
    check_requirement(envelope, requires, stage or to)
    if isinstance(deadline, timedelta):
        deadline = Deadlines(running=deadline)
    if on_failure is None:
        plan: OnFailure = Retry(policy=retry or RetryPolicy())
    elif retry is None:
        plan = on_failure
    elif isinstance(on_failure, Retry):
        raise ConfigurationError("give retry= or on_failure=Retry(...), not both")
    else:
        plan = Retry(policy=retry, then=on_failure)
    return SubtaskSpec(
        subtask_id=envelope.task_id, message=task, to=to, expect=expect,
        deadlines=deadline or Deadlines(), on_failure=plan, envelope=envelope, parent=parent,
        stage=stage, next_stage=next_stage, run=run, retry_budget=retry_budget, requires=requires,
    )  # fmt: skip


def check_requirement(envelope: Envelope, requires: Provenance | None, stage: str) -> None:
    """Refuse input less trusted than the stage requires.

    Raises:
        ProvenanceError: the envelope's provenance is weaker than ``requires``.
    """
    if requires is not None and not envelope.provenance.at_least(requires):
        raise ProvenanceError(f"stage {stage!r}", requires.value, envelope.provenance.value)
