"""The ``Resource`` base class users subclass, and its ``@write`` / ``@read`` methods."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from runtime import ConfigurationError, InvalidArgumentError

F = TypeVar("F", bound=Callable[..., Any])
Kind = Literal["write", "read"]
_KIND_ATTR = "__agentcast_kind__"
_CACHE_ATTR = "__agentcast_operations__"


def write(fn: F) -> F:
    """Mark a method as a write: ``(self, state, *args) -> result``.

    The resource's one applier runs it with the live state; the state changes it makes
    are committed with a new version, or undone if it raises.
    """
    setattr(fn, _KIND_ATTR, "write")
    return fn


def read(fn: F) -> F:
    """Mark a method as a read: ``(self, state, *args) -> value``, given a read-only view.

    A read sees every write acknowledged before it was sent.
    """
    setattr(fn, _KIND_ATTR, "read")
    return fn


class Resource:
    """A shared resource: state with ``@write`` and ``@read`` methods.

    The state is a dict of plain data (str or int keys). It lives in one Ray actor that
    applies writes one at a time and logs each durably before acknowledging it.
    """

    def initial_state(self) -> dict[Any, Any]:
        """The state before the first write. Default: an empty dict."""
        return {}


@dataclass(frozen=True, slots=True)
class Operation:
    """A ``@write`` or ``@read`` method and what its arguments should be."""

    name: str
    kind: Kind
    fn: Callable[..., Any]
    signature: inspect.Signature
    models: dict[str, type[BaseModel]]
    positional: tuple[int, int] | None  # (min, max) count when only positional args are taken

    def call(self, resource: Resource, state: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Call the method with decoded plain-data arguments, rebuilding pydantic models.

        Raises:
            InvalidArgumentError: the arguments do not fit the signature or the models.
            Exception: whatever the method raises.
        """
        # Fast path: plain positional arguments of the right count need no Signature.bind,
        # which is a quarter of the applier's time per write.
        if self.positional and not kwargs and not self.models:
            low, high = self.positional
            if low <= len(args) + 2 <= high:
                return self.fn(resource, state, *args)
        try:
            bound = self.signature.bind(resource, state, *args, **kwargs)
            for name, model in self.models.items():
                if name in bound.arguments and not isinstance(bound.arguments[name], model):
                    bound.arguments[name] = model.model_validate(bound.arguments[name])
        except (TypeError, ValidationError) as error:
            raise InvalidArgumentError(f"{self.name}: {error}") from error
        return self.fn(*bound.args, **bound.kwargs)


def operations(cls: type[Resource]) -> dict[str, Operation]:
    """Every ``@write`` and ``@read`` method of a resource class, by name.

    Raises:
        ConfigurationError: ``cls`` is not a ``Resource`` subclass.
    """
    if not (isinstance(cls, type) and issubclass(cls, Resource)):
        raise ConfigurationError(f"{cls!r} is not a subclass of Resource")
    # Cached on the class where it is first declared (the driver): a class defined in a
    # script travels to workers by value, where its annotations can no longer resolve.
    cached: dict[str, Operation] | None = cls.__dict__.get(_CACHE_ATTR)
    if cached is not None:
        return cached
    found: dict[str, Operation] = {}
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        kind = getattr(fn, _KIND_ATTR, None)
        if kind is not None:
            signature = inspect.signature(fn)
            found[name] = Operation(
                name, kind, fn, signature, _model_params(fn), _positional_range(signature)
            )
    setattr(cls, _CACHE_ATTR, found)
    return found


def _model_params(fn: Callable[..., Any]) -> dict[str, type[BaseModel]]:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: arguments stay plain data
        return {}
    return {
        name: hint
        for name, hint in hints.items()
        if name != "return" and isinstance(hint, type) and issubclass(hint, BaseModel)
    }


def _positional_range(signature: inspect.Signature) -> tuple[int, int] | None:
    """How many positional arguments (self and state included) the method takes, if it
    takes only plain positional parameters."""
    params = list(signature.parameters.values())
    if any(p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
        return None
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    return required, len(params)
