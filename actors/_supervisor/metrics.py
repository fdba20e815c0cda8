"""The supervisor's metrics through ``ray.util.metrics`` (Prometheus and the dashboard)."""

from __future__ import annotations

from typing import Protocol

from runtime import counter, histogram

_HISTOGRAMS = {
    "subtask_queue_ms": "Time an attempt waited for a free replica",
    "subtask_run_ms": "Time an attempt ran",
}


class Metrics(Protocol):
    """What the supervisor's parts report; ``flush`` sends it (the actor's timer calls it)."""

    def finished(self, outcome: str, reason: str) -> None: ...
    def attempt(self, group: str, outcome: str) -> None: ...
    def deadline_miss(self, phase: str) -> None: ...
    def late_result(self) -> None: ...
    def stall(self, stage: str) -> None: ...
    def queued_ms(self, value: float) -> None: ...
    def ran_ms(self, value: float) -> None: ...
    def sampled(self, stage: str, verdict: str) -> None: ...
    def flush(self) -> None: ...


class SupervisorMetrics:
    """Subtasks by outcome and reason, attempts, deadline misses, late results, stalls,
    queue and run time. Counts are summed in memory and sent by ``flush`` (the actor's
    timer calls it), so the hot path of a subtask makes no metrics call."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
        self._observed: dict[str, list[float]] = {}

    def _count(self, name: str, description: str, **tags: str) -> None:
        key = (name, description, tuple(sorted(tags.items())))
        self._counts[key] = self._counts.get(key, 0) + 1

    def finished(self, outcome: str, reason: str) -> None:
        self._count("subtasks_total", "Finished subtasks", outcome=outcome, reason=reason)

    def attempt(self, group: str, outcome: str) -> None:
        self._count("subtask_attempts_total", "Attempts", agent=group, outcome=outcome)

    def deadline_miss(self, phase: str) -> None:
        self._count("subtask_deadline_misses_total", "Deadline misses by phase", phase=phase)

    def late_result(self) -> None:
        self._count("subtask_late_results_total", "Late results of superseded attempts")

    def stall(self, stage: str) -> None:
        self._count("pipeline_stalls_total", "Stages silent past their window", stage=stage)

    def queued_ms(self, value: float) -> None:
        self._observed.setdefault("subtask_queue_ms", []).append(value)

    def ran_ms(self, value: float) -> None:
        self._observed.setdefault("subtask_run_ms", []).append(value)

    def sampled(self, stage: str, verdict: str) -> None:
        self._count(
            "samples_total", "Sampled final outputs by verdict", stage=stage, verdict=verdict
        )

    def flush(self) -> None:
        """Send what was counted and observed since the last flush."""
        counts, self._counts = self._counts, {}
        for (name, description, tags), n in counts.items():
            keys = tuple(k for k, _ in tags)
            counter(name, description, keys).inc(n, tags=dict(tags))
        observed, self._observed = self._observed, {}
        for name, values in observed.items():
            metric = histogram(name, _HISTOGRAMS[name], ())
            for value in values:
                metric.observe(value)


class NoMetrics:
    """Records nothing: for the plain-class tests, which run without Ray."""

    def finished(self, outcome: str, reason: str) -> None:
        pass

    def attempt(self, group: str, outcome: str) -> None:
        pass

    def deadline_miss(self, phase: str) -> None:
        pass

    def late_result(self) -> None:
        pass

    def stall(self, stage: str) -> None:
        pass

    def queued_ms(self, value: float) -> None:
        pass

    def ran_ms(self, value: float) -> None:
        pass

    def sampled(self, stage: str, verdict: str) -> None:
        pass

    def flush(self) -> None:
        pass
