"""Frozen policy values and pure decision functions. Never imports ray."""


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


from ._authority import WriteAuthority as WriteAuthority
from ._breaker import BreakerPolicy as BreakerPolicy
from ._breaker import BreakerState as BreakerState
from ._breaker import BreakerStatus as BreakerStatus
from ._breaker import fingerprint as fingerprint
from ._breaker import normalize_message as normalize_message
from ._budget import BudgetLimit as BudgetLimit
from ._budget import Dimension as Dimension
from ._budget import LeaseMode as LeaseMode
from ._budget import Ledger as Ledger
from ._budget import ModelPrice as ModelPrice
from ._budget import PriceTable as PriceTable
from ._budget import Scope as Scope
from ._budget import ScopeKind as ScopeKind
from ._budget import UnknownModelError as UnknownModelError
from ._budget import grant as grant
from ._budget import settle as settle
from ._budget_policy import BudgetPolicy as BudgetPolicy
from ._budget_policy import BudgetRetention as BudgetRetention
from ._budget_policy import Metering as Metering
from ._conflict import ConflictAction as ConflictAction
from ._conflict import ConflictLevel as ConflictLevel
from ._conflict import ConflictPolicy as ConflictPolicy
from ._conflict import ConflictRule as ConflictRule
from ._conflict import ConflictSide as ConflictSide
from ._conflict import ConflictVerdict as ConflictVerdict
from ._conflict import negotiation_verdict as negotiation_verdict
from ._conflict import rule_verdicts as rule_verdicts
from ._constraints import AllowOnly as AllowOnly
from ._constraints import CapArgument as CapArgument
from ._constraints import Constraint as Constraint
from ._constraints import ConstraintSet as ConstraintSet
from ._constraints import ForbidEntities as ForbidEntities
from ._constraints import ForbidPath as ForbidPath
from ._constraints import SpendCeiling as SpendCeiling
from ._constraints import describe_constraint as describe_constraint
from ._deadlines import Deadlines as Deadlines
from ._deadlines import Expiry as Expiry
from ._deadlines import ExpiryReason as ExpiryReason
from ._deadlines import expired as expired
from ._deadlines import next_expiry as next_expiry
from ._events import EventsPolicy as EventsPolicy
from ._failure import Abandon as Abandon
from ._failure import AbandonTask as AbandonTask
from ._failure import Escalate as Escalate
from ._failure import EscalateTo as EscalateTo
from ._failure import FailureAction as FailureAction
from ._failure import OnFailure as OnFailure
from ._failure import Reroute as Reroute
from ._failure import RerouteTo as RerouteTo
from ._failure import Retry as Retry
from ._failure import RetryAfter as RetryAfter
from ._failure import StopCause as StopCause
from ._failure import decide as decide
from ._hosts import HostPolicy as HostPolicy
from ._locks import LockPolicy as LockPolicy
from ._locks import breaks_order as breaks_order
from ._locks import in_lock_order as in_lock_order
from ._locks import key_prefix as key_prefix
from ._locks import order_rank as order_rank
from ._locks import prefix_label as prefix_label
from ._provenance import Provenance as Provenance
from ._provenance import ProvenanceTrust as ProvenanceTrust
from ._provenance import weakest as weakest
from ._resource import Durability as Durability
from ._resource import ResourcePolicy as ResourcePolicy
from ._restart_intensity import RestartIntensity as RestartIntensity
from ._restart_intensity import RestartTracker as RestartTracker
from ._retention import ResourceRetention as ResourceRetention
from ._retention import SupervisorRetention as SupervisorRetention
from ._retention import TokenRetention as TokenRetention
from ._retry import RetryPolicy as RetryPolicy
from ._retry import backoff as backoff
from ._retry import should_retry as should_retry
from ._retry_budget import RetryBudget as RetryBudget
from ._retry_budget import RetryBudgetState as RetryBudgetState
from ._sampling import SamplingPolicy as SamplingPolicy
from ._visibility import Latency as Latency
from ._visibility import OnTimeout as OnTimeout
from ._visibility import VisibilityPolicy as VisibilityPolicy
from ._visibility import VisibilityRule as VisibilityRule
from ._yaml import PolicyFileError as PolicyFileError
from ._yaml import PolicySet as PolicySet
from ._yaml import PolicyTypeError as PolicyTypeError
from ._yaml import PolicyValueError as PolicyValueError
from ._yaml import UnknownPolicyKeyError as UnknownPolicyKeyError
from ._yaml import load_policies as load_policies
from ._yaml import load_policies_file as load_policies_file
from ._yaml import parse_duration as parse_duration

__all__ = [
    "Abandon",
    "AbandonTask",
    "AllowOnly",
    "BreakerPolicy",
    "BreakerState",
    "BreakerStatus",
    "BudgetLimit",
    "BudgetPolicy",
    "BudgetRetention",
    "CapArgument",
    "ConflictAction",
    "ConflictLevel",
    "ConflictPolicy",
    "ConflictRule",
    "ConflictSide",
    "ConflictVerdict",
    "Constraint",
    "ConstraintSet",
    "Deadlines",
    "Dimension",
    "Durability",
    "Escalate",
    "EscalateTo",
    "EventsPolicy",
    "Expiry",
    "ExpiryReason",
    "FailureAction",
    "ForbidEntities",
    "ForbidPath",
    "HostPolicy",
    "Latency",
    "LeaseMode",
    "Ledger",
    "LockPolicy",
    "Metering",
    "ModelPrice",
    "OnFailure",
    "OnTimeout",
    "PolicyFileError",
    "PolicySet",
    "PolicyTypeError",
    "PolicyValueError",
    "PriceTable",
    "Provenance",
    "ProvenanceTrust",
    "Reroute",
    "RerouteTo",
    "ResourcePolicy",
    "ResourceRetention",
    "RestartIntensity",
    "RestartTracker",
    "Retry",
    "RetryAfter",
    "RetryBudget",
    "RetryBudgetState",
    "RetryPolicy",
    "SamplingPolicy",
    "Scope",
    "ScopeKind",
    "SpendCeiling",
    "StopCause",
    "SupervisorRetention",
    "TokenRetention",
    "UnknownModelError",
    "UnknownPolicyKeyError",
    "VisibilityPolicy",
    "VisibilityRule",
    "WriteAuthority",
    "backoff",
    "breaks_order",
    "decide",
    "describe_constraint",
    "expired",
    "fingerprint",
    "grant",
    "in_lock_order",
    "key_prefix",
    "load_policies",
    "load_policies_file",
    "negotiation_verdict",
    "next_expiry",
    "normalize_message",
    "order_rank",
    "parse_duration",
    "prefix_label",
    "rule_verdicts",
    "settle",
    "should_retry",
    "weakest",
]
