"""End-to-end sampling: which final outputs of a stage are compared with ground truth."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingPolicy:
    """How many of a stage's final outputs are compared with a ground-truth callable.

    Attributes:
        rate: the share of finished subtasks compared, from 0 (none) to 1 (all). Which
            ones is decided by a hash of the subtask id (and ``salt``), so a subtask is
            always chosen or never, whoever asks and however often. Default 0.05.
        salt: mixed into the hash, to draw another sample of the same ids. Default "".
        timeout: the longest the ground-truth callable may take; past it the verdict is
            ``error``. Default 30 seconds.

    Raises:
        ValueError: a rate outside [0, 1] or a timeout that is not positive.
    """

    rate: float = 0.05
    salt: str = ""
    timeout: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"SamplingPolicy.rate must be within [0, 1], not {self.rate}")
        if self.timeout <= timedelta(0):
            raise ValueError("SamplingPolicy.timeout must be positive")

    def chosen(self, subtask_id: str) -> bool:
        """Whether the output of ``subtask_id`` is compared with ground truth."""
        digest = hashlib.sha256(f"{self.salt}\0{subtask_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.rate * 2**64
