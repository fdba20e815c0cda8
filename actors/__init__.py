"""Agents, resources and the system that runs them on Ray.

These are the names a user writes code against. The plain-class cores and the Ray hosts
behind them, for tests and for embedding, are in ``actors.lowlevel``.
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


from policies import Provenance as Provenance

from ._agent.agent import Agent as Agent
from ._agent.agent import handler as handler
from ._agent.group import AgentGroup as AgentGroup
from ._budget.breakers import BreakerView as BreakerView
from ._budget.client import AgentBudget as AgentBudget
from ._budget.client import BudgetHandle as BudgetHandle
from ._budget.client import ToolGuard as ToolGuard
from ._budget.retries import RetryDecision as RetryDecision
from ._budget.status import BudgetStatus as BudgetStatus
from ._budget.store import BudgetEvent as BudgetEvent
from ._conflicts.messages import Arbitrate as Arbitrate
from ._conflicts.messages import ConflictSummary as ConflictSummary
from ._conflicts.messages import Negotiate as Negotiate
from ._conflicts.messages import Position as Position
from ._conflicts.messages import Ruling as Ruling
from ._contracts import check_contract as check_contract
from ._contracts import check_contracts as check_contracts
from ._contracts import contract as contract
from ._decisions.face import AsyncDecisions as AsyncDecisions
from ._decisions.face import Decisions as Decisions
from ._decisions.log import DecisionEntry as DecisionEntry
from ._events.face import Subscriptions as Subscriptions
from ._events.subscribe import subscribe as subscribe
from ._events.validate import Veto as Veto
from ._events.validate import validate as validate
from ._events.visibility import Visibility as Visibility
from ._locks.client import LocksHandle as LocksHandle
from ._locks.lease import AsyncLease as AsyncLease
from ._locks.lease import Lease as Lease
from ._locks.status import LocksStatus as LocksStatus
from ._locks.store import LockEvent as LockEvent
from ._reconnect import Reconnect as Reconnect
from ._resource.calls import ReadResult as ReadResult
from ._resource.calls import WriteResult as WriteResult
from ._resource.constraints import carrying as carrying
from ._resource.declare import Resource as Resource
from ._resource.declare import read as read
from ._resource.declare import write as write
from ._resource.features import derived as derived
from ._resource.handle import AsyncResourceHandle as AsyncResourceHandle
from ._resource.handle import ResourceHandle as ResourceHandle
from ._resource.handle import Write as Write
from ._resource.invariants import invariant as invariant
from ._resource.ownership import OwnershipRecord as OwnershipRecord
from ._resource.store import LogRecord as LogRecord
from ._resource.store import ResourceLog as ResourceLog
from ._supervisor.delegate import AsyncSupervisor as AsyncSupervisor
from ._supervisor.handle import AsyncSubtaskHandle as AsyncSubtaskHandle
from ._supervisor.handle import SubtaskHandle as SubtaskHandle
from ._supervisor.handle import Supervisor as Supervisor
from ._supervisor.types import Outcome as Outcome
from ._supervisor.types import SubtaskStatus as SubtaskStatus
from ._supervisor.verify import Claim as Claim
from ._supervisor.verify import Verdict as Verdict
from ._supervisor.verify import VerifyClaims as VerifyClaims
from ._supervisor.verify import check_claims as check_claims
from ._system import System as System

__all__ = [
    "Agent",
    "AgentBudget",
    "AgentGroup",
    "Arbitrate",
    "AsyncDecisions",
    "AsyncLease",
    "AsyncResourceHandle",
    "AsyncSubtaskHandle",
    "AsyncSupervisor",
    "BreakerView",
    "BudgetEvent",
    "BudgetHandle",
    "BudgetStatus",
    "Claim",
    "ConflictSummary",
    "DecisionEntry",
    "Decisions",
    "Lease",
    "LockEvent",
    "LocksHandle",
    "LocksStatus",
    "LogRecord",
    "Negotiate",
    "Outcome",
    "OwnershipRecord",
    "Position",
    "Provenance",
    "ReadResult",
    "Reconnect",
    "Resource",
    "ResourceHandle",
    "ResourceLog",
    "RetryDecision",
    "Ruling",
    "Subscriptions",
    "SubtaskHandle",
    "SubtaskStatus",
    "Supervisor",
    "System",
    "ToolGuard",
    "Verdict",
    "VerifyClaims",
    "Veto",
    "Visibility",
    "Write",
    "WriteResult",
    "carrying",
    "check_claims",
    "check_contract",
    "check_contracts",
    "contract",
    "derived",
    "handler",
    "invariant",
    "read",
    "subscribe",
    "validate",
    "write",
]
