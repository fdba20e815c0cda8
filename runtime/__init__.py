"""The substrate every actor and driver uses: envelope and ids, errors, storage, clock,
metrics, model clients, the serial applier of state actors, and the Ray glue that spawns a
plain class as a named actor.

Everything ``actors`` needs from here is exported below: no other package imports a
``runtime._private`` module (an import-linter contract holds it).
"""


# A user's own ``policies.py`` (or ``runtime``, ``actors``) earlier on sys.path would be
# imported instead of this project's package, with baffling errors later: refuse it here,
# naming the file. (Repeated in each package: a shadowed sibling cannot hold the check.)
def _refuse_shadowed_siblings() -> None:
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for name in ("policies", "runtime", "actors"):
        spec = importlib.util.find_spec(name)
        origin = None if spec is None else spec.origin
        if origin is not None and Path(origin).resolve() != root / name / "__init__.py":
            raise ImportError(
                f"{origin} shadows agentcast's {name!r} package (it comes first on sys.path): "
                "rename that file or folder"
            )


_refuse_shadowed_siblings()


from ._applier import SerialApplier as SerialApplier
from ._applier import apply_each as apply_each
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._codec import decode as decode
from ._codec import encode as encode
from ._constraint_errors import ConstraintLoosenedError as ConstraintLoosenedError
from ._constraint_errors import ConstraintViolationError as ConstraintViolationError
from ._constraint_errors import InvariantViolationError as InvariantViolationError
from ._context_errors import ContractMismatchError as ContractMismatchError
from ._context_errors import StaleContextError as StaleContextError
from ._envelope import MAX_BRIEFED_TOPICS as MAX_BRIEFED_TOPICS
from ._envelope import Envelope as Envelope
from ._envelope import checked_briefing as checked_briefing
from ._event_errors import EmitOutsideWriteError as EmitOutsideWriteError
from ._event_errors import EventError as EventError
from ._event_errors import MalformedEventError as MalformedEventError
from ._event_errors import UnknownDeadLetterError as UnknownDeadLetterError
from ._event_errors import UnknownEventTypeError as UnknownEventTypeError
from ._group_sync import GroupSync as GroupSync
from ._group_sync import defer_sync as defer_sync
from ._ids import new_span_id as new_span_id
from ._ids import new_task_id as new_task_id
from ._ids import new_trace_id as new_trace_id
from ._lock_errors import DeadlockError as DeadlockError
from ._lock_errors import LeaseExpiredError as LeaseExpiredError
from ._lock_errors import LockError as LockError
from ._lock_errors import LockOrderError as LockOrderError
from ._lock_errors import LockTimeoutError as LockTimeoutError
from ._lock_errors import StaleLeaseError as StaleLeaseError
from ._memory import CallTrim as CallTrim
from ._memory import fix_mmap_threshold as fix_mmap_threshold
from ._memory import trim_after_call as trim_after_call
from ._memory import trim_malloc as trim_malloc
from ._metrics import KeptGauge as KeptGauge
from ._metrics import RecordTimer as RecordTimer
from ._metrics import counter as counter
from ._metrics import gauge as gauge
from ._metrics import histogram as histogram
from ._model import Completion as Completion
from ._model import Message as Message
from ._model import ModelClient as ModelClient
from ._model import Usage as Usage
from ._model import check_max_tokens as check_max_tokens
from ._model import estimate_prompt_tokens as estimate_prompt_tokens
from ._model import estimate_text_tokens as estimate_text_tokens
from ._openai_client import OpenAICompatibleClient as OpenAICompatibleClient
from ._postgres import PgLocation as PgLocation
from ._ray_glue import STATE_RESOURCE as STATE_RESOURCE
from ._ray_glue import agent_actor_name as agent_actor_name
from ._ray_glue import get_or_spawn as get_or_spawn
from ._ray_glue import lookup as lookup
from ._ray_glue import named_actors as named_actors
from ._ray_glue import resource_actor_name as resource_actor_name
from ._ray_glue import spawn as spawn
from ._ray_glue import start_local_ray as start_local_ray
from ._scripted_model import ScriptedModel as ScriptedModel
from ._scripted_model import ScriptedRule as ScriptedRule
from ._storage import Connection as Connection
from ._storage import DatabaseErrors as DatabaseErrors
from ._storage import Location as Location
from ._storage import check_name as check_name
from ._storage import connect as connect
from ._storage import connect_read_only as connect_read_only
from ._storage import is_shared as is_shared
from ._storage import storage_root as storage_root
from ._storage import stores_in as stores_in
from ._storage import transaction as transaction
from ._storage import truncate_wal as truncate_wal
from ._subtask import AttemptRecord as AttemptRecord
from ._subtask import FailureReason as FailureReason
from ._tracing import flush_spans as flush_spans
from ._tracing import on_tracing_change as on_tracing_change
from ._tracing import otel_environment as otel_environment
from ._tracing import record_span as record_span
from ._tracing import span as span
from ._tracing import tracing_enabled as tracing_enabled
from ._visibility_errors import UnknownSubscriberError as UnknownSubscriberError
from ._visibility_errors import ValidatorFailedError as ValidatorFailedError
from ._visibility_errors import VetoedError as VetoedError
from ._visibility_errors import VisibilityError as VisibilityError
from .errors import AgentcastError as AgentcastError
from .errors import AgentError as AgentError
from .errors import AgentGoneError as AgentGoneError
from .errors import BudgetExceededError as BudgetExceededError
from .errors import CircuitOpenError as CircuitOpenError
from .errors import ConfigurationError as ConfigurationError
from .errors import ConflictError as ConflictError
from .errors import ConflictLostError as ConflictLostError
from .errors import FencedError as FencedError
from .errors import HandlerOutputError as HandlerOutputError
from .errors import IdempotencyKeyReusedError as IdempotencyKeyReusedError
from .errors import InvalidArgumentError as InvalidArgumentError
from .errors import ModelAuthError as ModelAuthError
from .errors import ModelError as ModelError
from .errors import ModelOutputError as ModelOutputError
from .errors import ModelRateLimitedError as ModelRateLimitedError
from .errors import ModelRequestError as ModelRequestError
from .errors import ModelResponseError as ModelResponseError
from .errors import ModelTimeoutError as ModelTimeoutError
from .errors import ModelUnavailableError as ModelUnavailableError
from .errors import NotOwnerError as NotOwnerError
from .errors import PayloadTooLargeError as PayloadTooLargeError
from .errors import ProvenanceError as ProvenanceError
from .errors import ResourceError as ResourceError
from .errors import ResourceUnavailableError as ResourceUnavailableError
from .errors import StorageError as StorageError
from .errors import SubtaskFailedError as SubtaskFailedError
from .errors import UnauthorizedWriterError as UnauthorizedWriterError
from .errors import UnknownHandlerError as UnknownHandlerError
from .errors import UnknownOperationError as UnknownOperationError
from .errors import WriteFailedError as WriteFailedError

__all__ = [
    "MAX_BRIEFED_TOPICS",
    "STATE_RESOURCE",
    "AgentError",
    "AgentGoneError",
    "AgentcastError",
    "AttemptRecord",
    "BudgetExceededError",
    "CallTrim",
    "CircuitOpenError",
    "Clock",
    "Completion",
    "ConfigurationError",
    "ConflictError",
    "ConflictLostError",
    "Connection",
    "ConstraintLoosenedError",
    "ConstraintViolationError",
    "ContractMismatchError",
    "DatabaseErrors",
    "DeadlockError",
    "EmitOutsideWriteError",
    "Envelope",
    "EventError",
    "FailureReason",
    "FencedError",
    "GroupSync",
    "HandlerOutputError",
    "IdempotencyKeyReusedError",
    "InvalidArgumentError",
    "InvariantViolationError",
    "KeptGauge",
    "LeaseExpiredError",
    "Location",
    "LockError",
    "LockOrderError",
    "LockTimeoutError",
    "MalformedEventError",
    "Message",
    "ModelAuthError",
    "ModelClient",
    "ModelError",
    "ModelOutputError",
    "ModelRateLimitedError",
    "ModelRequestError",
    "ModelResponseError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "NotOwnerError",
    "OpenAICompatibleClient",
    "PayloadTooLargeError",
    "PgLocation",
    "ProvenanceError",
    "RecordTimer",
    "ResourceError",
    "ResourceUnavailableError",
    "ScriptedModel",
    "ScriptedRule",
    "SerialApplier",
    "StaleContextError",
    "StaleLeaseError",
    "StorageError",
    "SubtaskFailedError",
    "SystemClock",
    "UnauthorizedWriterError",
    "UnknownDeadLetterError",
    "UnknownEventTypeError",
    "UnknownHandlerError",
    "UnknownOperationError",
    "UnknownSubscriberError",
    "Usage",
    "ValidatorFailedError",
    "VetoedError",
    "VisibilityError",
    "WriteFailedError",
    "agent_actor_name",
    "apply_each",
    "check_max_tokens",
    "check_name",
    "checked_briefing",
    "connect",
    "connect_read_only",
    "counter",
    "decode",
    "defer_sync",
    "encode",
    "estimate_prompt_tokens",
    "estimate_text_tokens",
    "fix_mmap_threshold",
    "flush_spans",
    "gauge",
    "get_or_spawn",
    "histogram",
    "is_shared",
    "lookup",
    "named_actors",
    "new_span_id",
    "new_task_id",
    "new_trace_id",
    "on_tracing_change",
    "otel_environment",
    "record_span",
    "resource_actor_name",
    "span",
    "spawn",
    "start_local_ray",
    "storage_root",
    "stores_in",
    "tracing_enabled",
    "transaction",
    "trim_after_call",
    "trim_malloc",
    "truncate_wal",
]
