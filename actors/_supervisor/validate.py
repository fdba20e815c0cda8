"""Checks of a submission, made where it is submitted so that a bad one fails at once with
a clear error instead of a subtask that can never run."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from runtime import ConfigurationError, check_name

from .._agent.group import find_replica


def check_submission(to: Any, expect: Any, namespace: str | None) -> None:
    """Check the target and the output model of a submission.

    Args:
        to: an agent name, or one replica ``"name:i"``.
        expect: a pydantic model class, or None.
        namespace: where the agents run; with it, a replica target must exist.

    Raises:
        ConfigurationError: ``to`` is not an agent name or ``"name:i"``, names a replica
            that does not run in ``namespace``, or ``expect`` is not a pydantic model class.
    """
    if not isinstance(to, str) or not to:
        raise ConfigurationError(f"to= must name an agent or a replica 'name:i', got {to!r}")
    group, pinned, index = to.partition(":")
    check_name("agent", group)
    if pinned and not index.isdigit():
        raise ConfigurationError(f"to={to!r}: a replica is 'name:i' with i a number")
    if expect is not None and not (isinstance(expect, type) and issubclass(expect, BaseModel)):
        raise ConfigurationError(f"expect= must be a pydantic model class or None, got {expect!r}")
    if pinned and namespace is not None:
        try:
            find_replica(namespace, f"{group}:{int(index)}")  # dedicated or pooled
        except ValueError:
            raise ConfigurationError(f"no replica {to!r} runs in {namespace!r}") from None
