"""The cores and hosts behind the public faces, for tests and for embedding.

Each actor family is a plain-class core (its logic, unit-tested without Ray) and a host
(the Ray actor that serves it). A user of ``actors`` never needs these; a test of the
logic, or a program that hosts a core its own way, does.
"""

from ._agent.host import AgentHost as AgentHost
from ._budget.book import SpendContext as SpendContext
from ._budget.core import BudgetCore as BudgetCore
from ._budget.core import Grant as Grant
from ._budget.host import BudgetHost as BudgetHost
from ._budget.metered_model import MeteredModel as MeteredModel
from ._decisions.log import DecisionLog as DecisionLog
from ._events.core import DispatchCore as DispatchCore
from ._events.dead_letters import DeadLetter as DeadLetter
from ._events.host import EventsHost as EventsHost
from ._events.store import EventLog as EventLog
from ._events.store import EventRecord as EventRecord
from ._locks.core import Acquire as Acquire
from ._locks.core import LocksCore as LocksCore
from ._locks.host import LocksHost as LocksHost
from ._locks.status import KeyStatus as KeyStatus
from ._locks.status import LeaseGrant as LeaseGrant
from ._locks.status import WaitAlert as WaitAlert
from ._resource.calls import WriteCall as WriteCall
from ._resource.core import ResourceCore as ResourceCore
from ._resource.host import ResourceHost as ResourceHost
from ._resource.store import AuditRecord as AuditRecord
from ._supervisor.core import SupervisorCore as SupervisorCore
from ._supervisor.host import SupervisorHost as SupervisorHost
from ._supervisor.types import SubtaskSpec as SubtaskSpec

__all__ = [
    "Acquire",
    "AgentHost",
    "AuditRecord",
    "BudgetCore",
    "BudgetHost",
    "DeadLetter",
    "DecisionLog",
    "DispatchCore",
    "EventLog",
    "EventRecord",
    "EventsHost",
    "Grant",
    "KeyStatus",
    "LeaseGrant",
    "LocksCore",
    "LocksHost",
    "MeteredModel",
    "ResourceCore",
    "ResourceHost",
    "SpendContext",
    "SubtaskSpec",
    "SupervisorCore",
    "SupervisorHost",
    "WaitAlert",
    "WriteCall",
]
