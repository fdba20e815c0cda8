"""The wait-for graph of the lock table, and the cycles in it.

Nodes are owners (a task of an agent replica, or a driver thread): an owner waits for the
owners of the leases that block its waiting lease. Owners, not leases, because an owner
that holds one lease and waits in another (nested leases) blocks others with the first
while it waits in the second: that is the inventory/pricing deadlock.
"""

from __future__ import annotations

from .table import LeaseState, LockTable


def _edges(table: LockTable) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for lease in table.leases.values():
        if not lease.held:
            targets = edges.setdefault(lease.owner, set())
            targets.update(blocker.owner for blocker in table.blockers(lease))
    return edges


def find_cycle(table: LockTable, start: str) -> list[str] | None:
    """A cycle of waits through ``start``: the owners on it, ``start`` first; or None.

    An owner that waits for itself (it holds a key exclusively and asks for it again) is
    a cycle of one.
    """
    edges = _edges(table)
    path: list[str] = [start]
    seen: set[str] = {start}
    stack = [iter(sorted(edges.get(start, ())))]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            path.pop()
            continue
        if nxt == start:
            return list(path)
        if nxt not in seen and nxt in edges:
            seen.add(nxt)
            path.append(nxt)
            stack.append(iter(sorted(edges[nxt])))
    return None


def victim(table: LockTable, cycle: list[str]) -> LeaseState:
    """The lease refused to break ``cycle``: the youngest waiter, the waiting lease of
    the cycle's owners that started waiting for its current key last."""
    owners = set(cycle)
    waiting = [lease for lease in table.leases.values() if not lease.held and lease.owner in owners]
    return max(waiting, key=lambda lease: lease.wait_seq)
