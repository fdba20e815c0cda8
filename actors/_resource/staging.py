"""One run of a write method, kept apart from its commit: a gated write runs once.

A within-transaction validator judges a write's events before it commits, while reads
go on seeing the committed state (docs/visibility.md). So ``ResourceCore.stage`` runs
the call's method once on a journaled view, keeps the outcome here (its value, encoded
result, changes, encoded diff and events; or its refusal) and takes the changes back
out of the state before anything awaits. Once the validators allowed it, the applier
commits that kept outcome, putting the recorded changes back, without calling the method
again: what the validators judged is exactly what commits, also for a method that reads
the clock, draws a random id or has a side effect.

Kept rather than staged in place (the state holding the uncommitted changes while
reads are served from the journal's before-values): that would give every read a second
path, through an overlay, for the one case of a gated write.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from policies import Provenance
from runtime import encode

from .._events.emit import Emitted, collecting
from .batch import Refused
from .calls import WriteCall, decode_arguments, error_payload
from .declare import Operation, Resource
from .invariants import check_invariants, refusal_reason
from .state_view import StateView, apply_changes


@dataclass(frozen=True, slots=True)
class Run:
    """What one run of a write method did: its value and encoded result, its changes
    (``StateView.changes``) and their encoding, the events it emitted."""

    value: Any
    result: bytes
    changes: list[list[Any]]
    diff: bytes
    emitted: Emitted

    def undo(self, state: dict[Any, Any]) -> None:
        """Take the run's changes back out of ``state``."""
        apply_changes(state, self.changes, forward=False)

    def redo(self, state: dict[Any, Any]) -> None:
        """Put the run's changes back into ``state``, which is as the run found it."""
        apply_changes(state, self.changes)


@dataclass(frozen=True, slots=True)
class Writer:
    """Who a write runs as: the writer its token was issued to (the call's claim without
    tokens, in plain-class use) and its mark as the resource believes it."""

    name: str
    mark: Provenance


_WRITER: ContextVar[Writer | None] = ContextVar("agentcast_writer", default=None)


def current_writer() -> Writer | None:
    """The writer of the write method running now; None outside one. For a resource
    whose state records who wrote (the decision log's entries): a claim in the
    arguments is the caller's word, this is the resource's."""
    return _WRITER.get()


def run_write(
    resource: Resource, name: str, op: Operation, call: WriteCall, state: dict[Any, Any],
    writer: Writer,
) -> Run:  # fmt: skip
    """Run ``call``'s write method as ``writer`` on a journaled view of ``state`` and
    check the resource's invariants; ``state`` is left changed.

    Raises:
        Refused: the method raised, changed something into what is not plain data, or
            broke an invariant; ``state`` is as it was.
    """
    view = StateView(state)
    running = _WRITER.set(writer)
    try:
        args, kwargs = decode_arguments(call.args)
        with collecting(name, resource.emits) as emitted:
            value = op.call(resource, view, args, kwargs)
        result, changes = encode(value), view.changes()
        diff = encode(changes)
        check_invariants(resource, name, call.op, state)  # before it commits
    except BaseException as error:
        view.undo()
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        raise Refused(error_payload(error, name, call.op), refusal_reason(error)) from error
    finally:
        _WRITER.reset(running)
    return Run(value, result, changes, diff, emitted)


class Staging:
    """The one call run ahead of its commit (the applier is held meanwhile: nothing
    else applies), with the version it ran on."""

    def __init__(self) -> None:
        self._kept: tuple[WriteCall, int, Run | Refused] | None = None

    def keep(self, call: WriteCall, version: int, outcome: Run | Refused) -> None:
        self._kept = (call, version, outcome)

    def take(self, call: WriteCall, version: int, state: dict[Any, Any]) -> Run | None:
        """The kept run of ``call``, its changes put back into ``state``; None if
        ``call`` was not run ahead on this version (any other kept run is dropped).

        Raises:
            Refused: the kept run was refused; the method is not run again.
        """
        kept, self._kept = self._kept, None
        if kept is None or kept[0] is not call or kept[1] != version:
            return None
        outcome = kept[2]
        if isinstance(outcome, Refused):
            raise outcome
        outcome.redo(state)
        return outcome
