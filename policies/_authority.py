"""Write authority: who may write to a resource."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteAuthority:
    """The declared writers of a resource.

    Attributes:
        writers: agent names allowed to write; None (the default) admits every writer.
            The driver writes as ``"system"``, which must be listed when writers are.
    """

    writers: frozenset[str] | None = None

    @classmethod
    def of(cls, writers: list[str] | tuple[str, ...] | frozenset[str] | None) -> WriteAuthority:
        """Authority admitting exactly ``writers`` (None admits all)."""
        return cls(writers=None if writers is None else frozenset(writers))

    def admits(self, writer: str) -> bool:
        """Whether ``writer`` may write."""
        return self.writers is None or writer in self.writers
