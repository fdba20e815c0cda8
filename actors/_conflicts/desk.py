"""Where a resource actor runs the ladder: on its event loop, outside its applier.

The resource's one applier refuses a write with ``ConflictError`` as it always did and
goes on with the next batch; the call that sent the write then awaits the ladder here
while other calls keep arriving, so agents thinking (negotiation, arbitration, a human)
never block the single writer. A winning write goes back through the applier, in
arrival order with everything else. The caller gets one answer: the write's result (a
duplicate-looking result when the ladder applied it), ``ConflictLostError``, or the
refusal of the winning write.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from policies import ConflictPolicy
from runtime import Clock, ConflictError, ConflictLostError, counter, decode

from .._resource.calls import WriteCall, WriteResult, decode_arguments
from .ladder import Conflict, Ladder, Levels, Settlement
from .store import ConflictStore


class ConflictDesk:
    """Settles the conflicts of one resource.

    Args:
        resource: the resource's name.
        policy: its ladder.
        store: where conflicts are recorded.
        levels: how levels 2-4 reach agents.
        apply: runs one write through the resource's applier.
        writer_of: the authenticated writer of a call (its token's holder).
        incumbent: the writer of the resource's current version ("" if unknown).
        clock: the time of the records.
    """

    def __init__(
        self,
        resource: str,
        policy: ConflictPolicy,
        store: ConflictStore,
        levels: Levels,
        apply: Callable[[WriteCall], Awaitable[WriteResult[Any]]],
        writer_of: Callable[[WriteCall], str],
        incumbent: Callable[[], str],
        clock: Clock,
    ) -> None:
        self._resource = resource
        self._policy = policy
        self.store = store
        self._levels = levels
        self._apply = apply
        self._writer_of = writer_of
        self._incumbent = incumbent
        self._clock = clock
        self._climbing: dict[str, asyncio.Future[WriteResult[Any]]] = {}

    async def settle(
        self, calls: list[WriteCall], results: list[WriteResult[Any]]
    ) -> list[WriteResult[Any]]:
        """``results`` with each ``ConflictError`` replaced by what the ladder decided;
        unchanged when the policy climbs nothing."""
        if not self._policy.climbs:
            return results
        conflicted = [i for i, r in enumerate(results) if isinstance(r.error, ConflictError)]
        if not conflicted:
            return results
        settled = await asyncio.gather(
            *(self.one(calls[i], results[i]) for i in conflicted), return_exceptions=True
        )
        merged = list(results)
        for index, result in zip(conflicted, settled, strict=True):
            # the ladder's own failure (its store down) leaves that write refused as it
            # was, never the other writes of the call without their results
            merged[index] = result if isinstance(result, WriteResult) else results[index]
        return merged

    async def one(self, call: WriteCall, refused: WriteResult[Any]) -> WriteResult[Any]:
        """The outcome of one conflicted write: joined if it climbs already, the stored
        one if it settled before (a re-sent write), else climbed now."""
        key = call.idem_key
        if key not in self._climbing:
            stored = self.store.get(key)
            if stored is not None and stored[0].settled is not None:
                return self._stored(stored[0], stored[1], refused)
            task = asyncio.ensure_future(self._climb(call, refused))
            self._climbing[key] = task
            task.add_done_callback(lambda _: self._climbing.pop(key, None))
        return await asyncio.shield(self._climbing[key])

    async def _climb(self, call: WriteCall, refused: WriteResult[Any]) -> WriteResult[Any]:
        error = refused.error
        args, kwargs = decode_arguments(call.args)
        conflict = Conflict(
            call.idem_key, self._resource, call.op, self._writer_of(call), self._incumbent(),
            call.expected_version, getattr(error, "current", refused.version), call.trace_id,
            args, kwargs,
        )  # fmt: skip
        self.store.open(conflict, self._clock.now())

        async def apply(merge_op: str | None) -> WriteResult[Any]:
            if merge_op is None:  # the same key: a re-sent write then finds it committed
                return await self._apply(dataclasses.replace(call, expected_version=None))
            merge = dataclasses.replace(
                call, op=merge_op, expected_version=None, idem_key=f"{call.idem_key}:merge"
            )
            return await self._apply(merge)

        settled = await Ladder(self._policy, self._levels, apply).climb(conflict)
        self.store.settle(call.idem_key, settled, self._clock.now())
        tags = {"resource": self._resource, "level": str(int(settled.level))}
        counter(
            "conflicts_total", "Conflicts by the level that settled them and their outcome",
            ("resource", "level", "outcome"),
        ).inc(tags={**tags, "outcome": settled.outcome})  # fmt: skip
        return self._answer(conflict, settled, refused)

    def _answer(
        self, conflict: Conflict, settled: Settlement, refused: WriteResult[Any]
    ) -> WriteResult[Any]:
        if settled.result is not None:
            return settled.result
        lost = ConflictLostError(
            self._resource, conflict.conflict_id, int(settled.level), settled.detail
        )
        return WriteResult(refused.version, error=lost)

    def _stored(
        self, record: Any, value: bytes | None, refused: WriteResult[Any]
    ) -> WriteResult[Any]:
        if record.outcome == "applied" and record.version is not None:
            return WriteResult(record.version, decode(value) if value else None, duplicate=True)
        level = record.level or 0
        lost = ConflictLostError(self._resource, record.conflict_id, level, record.detail)
        return WriteResult(refused.version, error=lost)
