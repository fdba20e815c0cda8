"""The bytes one unbatched durable write puts on the wire, for the bench row that makes a
plain-Ray no-op call carrying the same payload (``noop_payload``).

A durable write crosses as one msgpack blob of its stamped calls (``pack_calls``: op,
encoded arguments, writer, epoch, capability token, idempotency key, trace, leases,
constraints, provenance) and comes back as one blob of results. The row sends exactly
the request a client's ``write("add", key, 1)`` sends and gets back exactly the reply the
resource gave to it, so the two rows differ only by what the resource does.
"""

from __future__ import annotations

from typing import Any

from ..._reconnect import run_async
from ..._resource.calls import pack_calls
from ..._resource.handle import Write


async def write_payload(resource: Any, key: str) -> tuple[bytes, bytes]:
    """The request blob of one ``write("add", key, 1)`` through ``resource`` (an agent's
    resource handle) and the reply the resource gives it (the write is applied once).

    Raises:
        ResourceUnavailableError: the resource stayed unreachable.
    """
    calls = resource._calls
    described = await run_async(calls.describe(), calls.clock)
    request = pack_calls([calls._stamp(Write(op="add", args=(key, 1)), described.max_payload)])
    reply: bytes = await calls.actor.submit.remote(request)
    return request, reply
