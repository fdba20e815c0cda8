"""Rows whose ratio is a target, measured side by side: interleaved rounds at each N.

Load on a shared machine moves within minutes, so a durable-write row measured minutes
apart from its reference (a no-op call carrying the same payload) says more about the
load than about the write. At each client count the paired rows run in rounds, one after
the other, the order reversed every round (A B C, C B A, ...), on the same clients with
the same payload; a ratio is taken inside each round and the report gives the median of
the rounds' ratios. Each round counts into a key of its own, so every round is checked
for lost and duplicated updates like any other row.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

from .clients import RowSpec

PAIRED = ("noop_payload", "durable_unbatched", "durable_unbatched_process")
"""The rows measured in interleaved rounds (the reference first)."""
SIDE_BY_SIDE = (
    ("durable_unbatched", "noop_payload"),
    ("durable_unbatched_process", "noop_payload"),
)
"""(row, reference): the ratios taken inside each round."""

RunRow = Callable[[RowSpec, int, str], dict[str, Any]]
"""Measures one row at N clients, counting into keys tagged with the given suffix."""


def round_order(names: tuple[str, ...], index: int) -> tuple[str, ...]:
    """The order of round ``index``: as given on even rounds, reversed on odd ones, so
    no row always runs first (after the warm-up) or last."""
    return names if index % 2 == 0 else names[::-1]


def measure_paired(
    run: RunRow, specs: dict[str, RowSpec], n: int, rounds: int
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """``rounds`` interleaved rounds of the ``PAIRED`` rows at ``n`` clients.

    Returns:
        Every round's rows, each tagged with its ``round``, and per ``row/reference``
        of ``SIDE_BY_SIDE`` the ratio of throughputs inside each round, in round order.
    """
    measured: list[dict[str, Any]] = []
    ratios: dict[str, list[float]] = {f"{a}/{b}": [] for a, b in SIDE_BY_SIDE}
    for index in range(rounds):
        found: dict[str, dict[str, Any]] = {}
        for name in round_order(PAIRED, index):
            found[name] = run(specs[name], n, f".r{index}")
            found[name]["round"] = index
        measured += [found[name] for name in PAIRED]
        for a, b in SIDE_BY_SIDE:
            ratios[f"{a}/{b}"].append(found[a]["throughput"] / found[b]["throughput"])
    return measured, ratios


def median_rows(round_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (row, N), the round whose throughput is the median (the lower middle one for
    an even count): the row the report shows, with its own key and counts."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in round_rows:
        groups.setdefault((row["row"], row["n"]), []).append(row)
    chosen = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r["throughput"])
        chosen.append(ordered[(len(ordered) - 1) // 2])
    return chosen


def side_by_side(per_n: dict[int, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    """Per ratio, per N: the median of the rounds' ratios and the rounds themselves."""
    names = [f"{a}/{b}" for a, b in SIDE_BY_SIDE]
    return {
        name: {
            str(n): {"median": statistics.median(found[name]), "rounds": found[name]}
            for n, found in sorted(per_n.items())
        }
        for name in names
    }
