"""Resources and agents of the ownership and conflict-ladder tests."""

from __future__ import annotations

from typing import Any

from actors import Resource, read, write


class Drafts(Resource):
    """Drafts by id: revisions (owned per draft), publications, and unowned notes."""

    @write(entity="draft_id")
    def revise(self, state: dict[str, Any], draft_id: str, text: str) -> int:
        draft = state.get(draft_id) or {"text": "", "rev": 0}
        state[draft_id] = {"text": text, "rev": draft["rev"] + 1}
        return int(state[draft_id]["rev"])

    @write(entity=lambda draft_id, **_: f"{draft_id}")
    def publish(self, state: dict[str, Any], draft_id: str) -> str:
        text = str((state.get(draft_id) or {}).get("text", ""))
        state[f"published:{draft_id}"] = text
        return text

    @write
    def note(self, state: dict[str, Any], text: str) -> int:
        state["notes"] = [*state.get("notes", []), text]
        return len(state["notes"])

    @read
    def draft(self, state: dict[str, Any], draft_id: str) -> Any:
        return state.get(draft_id)
