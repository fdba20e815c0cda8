"""Admission tokens: what a task's next leased call on one metered model may take for granted.

A leased call admitted by the full path (``MeteredModel._full``: the breaker view checked,
the run's lease found, no constraints to prepend, tracing off) leaves a token in the
context of the task that made it: the allowance it took a slot of and its lease, and until
when both that allowance and the breaker view it saw hold. The next call of that task on
that model, under a token still valid, does only the prompt estimate, one clock read and
the slot (``MeteredModel.complete``).

What ends a token:

- its task: a token names the handler's task it was made in (``current_task``) and is
  good only while that task runs, so a handler never inherits the token of another run,
  however the runtime starts handlers (a subscriber runs a batch's handlers one after the
  other in one asyncio task); it lives in a ``ContextVar``, and entering ``carrying``
  hides the context's token until the block ends, so a handler that tightens its
  constraints mid-way takes the full path again;
- its allowance: no slot left (spent, retired, or closed because the handler ended and
  the lease is being settled), or its ``until`` passed (the allowance's half-life, its
  stop, or the breaker view's age limit, whichever comes first);
- revocation, of every token of the process at once (``revoke_all``): whenever the meter's
  view of a breaker changes (a failure or success reported by any agent of the process, a
  view refreshed, a breaker admitted half-open), whenever tracing is switched on or off
  (``runtime.on_tracing_change``), and when a verifier raises its task's provenance mark
  (``actors._agent.derived.vouch``: a reply noted before must lower it again).
"""

from __future__ import annotations

import math
import weakref
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

from runtime import on_tracing_change

from .._agent.task import TaskContext, current_task

if TYPE_CHECKING:  # imported by ``carrying``: nothing of the budget at import time
    from .lease import Allowance, Lease


class Admission:
    """One task's admission on one metered model (see the module docstring).

    Attributes:
        model: the metered model it admits calls to.
        task: the handler's task it was made in (None outside a handler).
        allowance: the allowance its calls take slots of.
        lease: the lease that allowance belongs to (to draw the next one when it is low).
        until: the monotonic time it ends at; set to minus infinity when it is revoked.
        noted: the provenance of the last reply noted under it in the task's derivation
            (``actors._agent.derived.note``), None before the first: noting the same
            mark and source again changes nothing, as long as nothing raised the task's
            mark meanwhile (``derived.vouch`` revokes every token).
    """

    __slots__ = (
        "__weakref__", "allowance", "lease", "model", "noted", "task", "until",
    )  # fmt: skip

    def __init__(self, model: object, allowance: Allowance, lease: Lease, until: float) -> None:
        self.model = model
        self.task: TaskContext | None = current_task.get()
        self.allowance = allowance
        self.lease = lease
        self.until = until
        self.noted: object = None


ADMITTED: ContextVar[Admission | None] = ContextVar("agentcast_admitted", default=None)
"""The admission of the task running in this context, or None."""

_LIVE: weakref.WeakSet[Admission] = weakref.WeakSet()  # every token revoke_all must reach


def admit(model: object, allowance: Allowance, lease: Lease, until: float) -> Admission:
    """Leave a token in the running task's context (and remember it for ``revoke_all``)."""
    token = Admission(model, allowance, lease, until)
    _LIVE.add(token)
    ADMITTED.set(token)
    return token


def revoke_all() -> None:
    """End every token of this process: the next call of every task takes the full path."""
    for token in list(_LIVE):
        token.until = -math.inf
    _LIVE.clear()


def hide() -> Token[Admission | None]:
    """Hide this context's token (a handler starts, or its constraints change); the
    returned token restores it (``restore``)."""
    return ADMITTED.set(None)


def restore(hidden: Token[Admission | None]) -> None:
    """Undo ``hide``: the context's token is the one it had before."""
    ADMITTED.reset(hidden)


on_tracing_change(revoke_all)
