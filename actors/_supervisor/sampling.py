"""End-to-end sampling of final outputs (the field report's third level of observability):
a declared stage's finished outputs are compared, at a declared rate, with what a
ground-truth callable says they should be. Each comparison is a supervisor event
(``sample``) and a count in ``agentcast_samples_total{stage, verdict}``.

A stage is a subtask's ``stage`` or, without one, its target agent. The callable runs in a
thread, off the supervisor's loop, bounded by the policy's timeout. Declarations live in
the supervisor's memory (like declared stages): a restarted supervisor needs them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from policies import SamplingPolicy
from runtime import Clock, InvalidArgumentError

from .background import Background
from .metrics import Metrics
from .store import SubtaskStore
from .types import SubtaskSpec

_log = logging.getLogger(__name__)

Truth = Callable[[Any], Any]
"""Given a subtask's input message, the output it should have had."""
Agree = Callable[[Any, BaseModel], bool]
"""Whether an expected output and the actual one agree."""


def same_output(expected: Any, actual: BaseModel) -> bool:
    """The default comparison: equal as data (a model, a dict or the model itself)."""
    if isinstance(expected, BaseModel):
        return bool(expected.model_dump() == actual.model_dump())
    if isinstance(expected, dict):
        return expected == actual.model_dump()
    return bool(expected == actual)


@dataclass(frozen=True, slots=True)
class _Sampler:
    truth: Truth
    agree: Agree
    policy: SamplingPolicy


class OutputSampler:
    """Compares chosen final outputs of declared stages with their ground truth."""

    def __init__(
        self, store: SubtaskStore, *, clock: Clock, metrics: Metrics, background: Background
    ) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._background = background
        self._samplers: dict[str, _Sampler] = {}

    def declare(self, stage: Any, truth: Any, agree: Any, policy: Any) -> None:
        """Compare ``policy.rate`` of the outputs of ``stage`` with ``truth``.

        Raises:
            InvalidArgumentError: ``stage`` is not a non-empty str, ``truth`` (or a given
                ``agree``) is not callable, or ``policy`` is not a ``SamplingPolicy``.
        """
        if not isinstance(stage, str) or not stage:
            raise InvalidArgumentError(f"a sampled stage must be a non-empty str, not {stage!r}")
        if not callable(truth) or not (agree is None or callable(agree)):
            raise InvalidArgumentError("a sampler's truth and agree must be callables")
        if not isinstance(policy, SamplingPolicy):
            raise InvalidArgumentError(f"a sampler takes a SamplingPolicy, not {policy!r}")
        self._samplers[stage] = _Sampler(truth, agree or same_output, policy)

    def declared(self) -> dict[str, float]:
        """The sampled stages and their rates (for ``agentcast check``)."""
        return {stage: s.policy.rate for stage, s in sorted(self._samplers.items())}

    def finished(self, spec: SubtaskSpec, output: BaseModel | None) -> None:
        """A subtask finished: sample its output if its stage is sampled and it is chosen."""
        stage = spec.stage or spec.to
        sampler = self._samplers.get(stage)
        if output is None or sampler is None or not sampler.policy.chosen(spec.subtask_id):
            return
        self._background.spawn(self._compare(stage, sampler, spec, output))

    async def _compare(
        self, stage: str, sampler: _Sampler, spec: SubtaskSpec, output: BaseModel
    ) -> None:
        timeout = sampler.policy.timeout.total_seconds()
        try:
            expected = await asyncio.wait_for(
                asyncio.to_thread(sampler.truth, spec.message), timeout
            )
            agreed = sampler.agree(expected, output)
            verdict, detail = ("agree" if agreed else "disagree"), ""
            if not agreed:
                detail = f"expected {expected!r}, got {output!r}"
        except Exception as error:  # the ground truth failed: a verdict of its own
            verdict, detail = "error", f"{type(error).__name__}: {error}"
        self._metrics.sampled(stage, verdict)
        self._store.stage_event(
            self._clock.now().timestamp(), "sample", spec.subtask_id,
            {"stage": stage, "verdict": verdict, "detail": detail[:1000],
             "trace_id": spec.envelope.trace_id},
        )  # fmt: skip
        try:
            await self._store.commit()
        except Exception as error:
            _log.warning("the sample of %s was not stored: %s", spec.subtask_id, error)
