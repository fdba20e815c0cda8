"""A report desk whose publish write requires VERIFIED input, for the provenance tests."""

from __future__ import annotations

from typing import Any

from actors import Provenance, Resource, read, write


class Reports(Resource):
    """Drafts anyone may write; a published figure needs VERIFIED provenance, which the
    resource believes only from the system and from the declared ``checker``."""

    vouchers = {"checker": Provenance.VERIFIED}

    @write
    def draft(self, state: dict[str, Any], key: str, figure: float) -> float:
        state[f"draft:{key}"] = figure
        return figure

    @write(requires=Provenance.VERIFIED)
    def publish(self, state: dict[str, Any], key: str, figure: float) -> float:
        state[f"published:{key}"] = figure
        return figure

    @read
    def get(self, state: dict[str, Any], key: str) -> Any:
        return state.get(key)
