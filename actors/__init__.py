"""Agents, resources and the system that runs them on Ray."""

from ._agent.agent import Agent as Agent
from ._agent.agent import handler as handler
from ._agent.host import AgentHost as AgentHost
from ._budget.book import SpendContext as SpendContext
from ._budget.client import AgentBudget as AgentBudget
from ._budget.client import BudgetHandle as BudgetHandle
from ._budget.client import ToolGuard as ToolGuard
from ._budget.core import BreakerView as BreakerView
from ._budget.core import BudgetCore as BudgetCore
from ._budget.core import Grant as Grant
from ._budget.core import RetryDecision as RetryDecision
from ._budget.host import BudgetHost as BudgetHost
from ._budget.metered_model import MeteredModel as MeteredModel
from ._reconnect import Reconnect as Reconnect
from ._resource.calls import ReadResult as ReadResult
from ._resource.calls import WriteCall as WriteCall
from ._resource.calls import WriteResult as WriteResult
from ._resource.core import ResourceCore as ResourceCore
from ._resource.declare import Resource as Resource
from ._resource.declare import read as read
from ._resource.declare import write as write
from ._resource.handle import AsyncResourceHandle as AsyncResourceHandle
from ._resource.handle import ResourceHandle as ResourceHandle
from ._resource.handle import Write as Write
from ._resource.host import ResourceHost as ResourceHost
from ._resource.store import LogRecord as LogRecord
from ._resource.store import ResourceLog as ResourceLog
from ._supervisor.core import SupervisorCore as SupervisorCore
from ._supervisor.handle import AsyncSubtaskHandle as AsyncSubtaskHandle
from ._supervisor.handle import AsyncSupervisor as AsyncSupervisor
from ._supervisor.handle import SubtaskHandle as SubtaskHandle
from ._supervisor.handle import Supervisor as Supervisor
from ._supervisor.host import SupervisorHost as SupervisorHost
from ._supervisor.types import Outcome as Outcome
from ._supervisor.types import SubtaskSpec as SubtaskSpec
from ._supervisor.types import SubtaskStatus as SubtaskStatus
from ._system import AgentGroup as AgentGroup
from ._system import System as System

__all__ = [
    "Agent",
    "AgentBudget",
    "AgentGroup",
    "AgentHost",
    "AsyncResourceHandle",
    "AsyncSubtaskHandle",
    "AsyncSupervisor",
    "BreakerView",
    "BudgetCore",
    "BudgetHandle",
    "BudgetHost",
    "Grant",
    "LogRecord",
    "MeteredModel",
    "Outcome",
    "ReadResult",
    "Reconnect",
    "Resource",
    "ResourceCore",
    "ResourceHandle",
    "ResourceHost",
    "ResourceLog",
    "RetryDecision",
    "SpendContext",
    "SubtaskHandle",
    "SubtaskSpec",
    "SubtaskStatus",
    "Supervisor",
    "SupervisorCore",
    "SupervisorHost",
    "System",
    "ToolGuard",
    "Write",
    "WriteCall",
    "WriteResult",
    "handler",
    "read",
    "write",
]
