"""The root of the error tree (``runtime.errors``), apart so that the families defined
in their own modules (``_model_errors``) can subclass it without an import cycle."""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[AgentcastError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class AgentcastError(Exception):
    """Root of every error agentcast raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))
