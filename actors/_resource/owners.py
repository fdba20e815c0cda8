"""The faces of ownership: ``system.ownership`` for the driver, ``self.own`` / ``transfer``
/ ``release`` / ``owner`` inside an agent's handler.

An entity is addressed as ``"<resource>:<entity>"`` (``"drafts:42"``): the resource that
holds it keeps its owner (``actors._resource.ownership``). Every change is stamped by the
runtime with the caller's writer token, an idempotency key (so a change re-sent while the
resource restarts is applied once), and the trace and task it comes from.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from runtime import Clock, ConfigurationError, InvalidArgumentError, SystemClock, check_name

from .._reconnect import Plan, Reconnect, reconnecting, run_async, run_blocking
from .handle import WriterIdentity
from .ownership import OwnershipChange, OwnershipRecord, pack_change


def parse_address(address: Any) -> tuple[str, str]:
    """``"drafts:42"`` -> ``("drafts", "42")``.

    Raises:
        InvalidArgumentError: not ``"<resource>:<entity>"`` with a valid resource name.
    """
    if not isinstance(address, str) or ":" not in address:
        raise InvalidArgumentError(f"an entity address is '<resource>:<entity>', not {address!r}")
    resource, entity = address.split(":", 1)
    try:
        check_name("resource", resource)
    except ConfigurationError as error:
        raise InvalidArgumentError(f"entity address {address!r}: {error}") from None
    if not entity:
        raise InvalidArgumentError(f"entity address {address!r} names no entity")
    return resource, entity


class OwnershipCalls:
    """The logic of both faces, as plans (``actors._reconnect``).

    Args:
        actor_of: the resource actor of a resource name (raises ``ConfigurationError``).
        identity: the writer the changes are made as.
        context: the (trace id, task id) of the current call.
        reconnect: how long to re-send while a resource restarts.
        clock: the time of reconnects.
    """

    def __init__(
        self,
        actor_of: Callable[[str], Any],
        identity: WriterIdentity,
        context: Callable[[], tuple[str, str]],
        reconnect: Reconnect,
        clock: Clock,
    ) -> None:
        self._actor_of = actor_of
        self._identity = identity
        self._context = context
        self.reconnect = reconnect
        self.clock = clock

    def change(self, action: str, address: str, to: str, handoff: str) -> Plan[OwnershipRecord]:
        resource, entity = parse_address(address)
        if not isinstance(to, str) or not isinstance(handoff, str):
            raise InvalidArgumentError("the new owner and the handoff note are str")
        trace_id, task_id = self._context()
        me = self._identity
        change = OwnershipChange(
            action, entity, to, handoff, f"own:{uuid.uuid4().hex}", me.writer, me.epoch,
            me.token, trace_id, task_id,
        )  # fmt: skip
        send = partial(self._actor_of(resource).change_owner.remote, pack_change(change))
        record: OwnershipRecord = yield from reconnecting(
            send, reconnect=self.reconnect, clock=self.clock, target=resource
        )
        return record

    def owner(self, address: str) -> Plan[str | None]:
        resource, entity = parse_address(address)
        send = partial(self._actor_of(resource).owner.remote, entity)
        owner: str | None = yield from reconnecting(
            send, reconnect=self.reconnect, clock=self.clock, target=resource
        )
        return owner

    def history(self, address: str) -> Plan[list[OwnershipRecord]]:
        resource, entity = parse_address(address)
        send = partial(self._actor_of(resource).ownership_history.remote, entity)
        records: list[OwnershipRecord] = yield from reconnecting(
            send, reconnect=self.reconnect, clock=self.clock, target=resource
        )
        return records


class Ownership:
    """Ownership of entities, for the driver (``system.ownership``). The driver acts as
    ``"system"``: it may own, transfer and release any entity, but may not write to an
    owned one. An entity is ``"<resource>:<entity>"``."""

    def __init__(self, calls: OwnershipCalls) -> None:
        self._calls = calls

    def own(self, address: str, *, by: str) -> OwnershipRecord:
        """Make ``by`` the owner of an unowned entity (again: a no-op change).

        Raises:
            NotOwnerError: another agent owns it.
            UnauthorizedWriterError: ``by`` is not a declared writer of the resource.
            InvalidArgumentError: a bad address or agent name.
            ConfigurationError: no such resource runs.
            ResourceUnavailableError: the resource stayed unreachable.
        """
        return run_blocking(self._calls.change("own", address, by, ""), self._calls.clock)

    def transfer(self, address: str, *, to: str, handoff: str = "") -> OwnershipRecord:
        """Move an owned entity to ``to``, recording ``handoff`` (what was handed over).

        Raises:
            NotOwnerError: the entity has no owner.
            UnauthorizedWriterError, InvalidArgumentError, ConfigurationError,
                ResourceUnavailableError: as for ``own``.
        """
        plan = self._calls.change("transfer", address, to, handoff)
        return run_blocking(plan, self._calls.clock)

    def release(self, address: str) -> OwnershipRecord:
        """Leave the entity without an owner: any writer may write it again.

        Raises:
            NotOwnerError: the entity has no owner.
            InvalidArgumentError, ConfigurationError, ResourceUnavailableError: as for
                ``own``.
        """
        return run_blocking(self._calls.change("release", address, "", ""), self._calls.clock)

    def owner(self, address: str) -> str | None:
        """The entity's owner, or None.

        Raises:
            InvalidArgumentError, ConfigurationError, ResourceUnavailableError: as ``own``.
        """
        return run_blocking(self._calls.owner(address), self._calls.clock)

    def history(self, address: str) -> list[OwnershipRecord]:
        """The entity's ownership changes still kept, oldest first.

        Raises:
            InvalidArgumentError, ConfigurationError, ResourceUnavailableError: as ``own``.
        """
        return run_blocking(self._calls.history(address), self._calls.clock)


async def run_owned(plan: Plan[Any], clock: Clock | None = None) -> Any:
    """Run an ownership plan in an agent's event loop."""
    return await run_async(plan, clock or SystemClock())
