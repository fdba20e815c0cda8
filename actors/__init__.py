"""Agents, resources and the system that runs them on Ray."""

from ._agent import Agent as Agent
from ._agent import handler as handler
from ._agent_host import AgentHost as AgentHost
from ._budget_book import SpendContext as SpendContext
from ._budget_client import AgentBudget as AgentBudget
from ._budget_client import BudgetHandle as BudgetHandle
from ._budget_client import ToolGuard as ToolGuard
from ._budget_core import BreakerView as BreakerView
from ._budget_core import BudgetCore as BudgetCore
from ._budget_core import Grant as Grant
from ._budget_core import RetryDecision as RetryDecision
from ._budget_host import BudgetHost as BudgetHost
from ._calls import ReadResult as ReadResult
from ._calls import WriteCall as WriteCall
from ._calls import WriteResult as WriteResult
from ._metered_model import MeteredModel as MeteredModel
from ._resource import Resource as Resource
from ._resource import read as read
from ._resource import write as write
from ._resource_core import ResourceCore as ResourceCore
from ._resource_handle import AsyncResourceHandle as AsyncResourceHandle
from ._resource_handle import Reconnect as Reconnect
from ._resource_handle import ResourceHandle as ResourceHandle
from ._resource_handle import Write as Write
from ._resource_host import ResourceHost as ResourceHost
from ._supervisor_core import SupervisorCore as SupervisorCore
from ._supervisor_handle import AsyncSubtaskHandle as AsyncSubtaskHandle
from ._supervisor_handle import AsyncSupervisor as AsyncSupervisor
from ._supervisor_handle import SubtaskHandle as SubtaskHandle
from ._supervisor_handle import Supervisor as Supervisor
from ._supervisor_host import SupervisorHost as SupervisorHost
from ._supervisor_types import Outcome as Outcome
from ._supervisor_types import SubtaskSpec as SubtaskSpec
from ._supervisor_types import SubtaskStatus as SubtaskStatus
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
    "MeteredModel",
    "Outcome",
    "ReadResult",
    "Reconnect",
    "Resource",
    "ResourceCore",
    "ResourceHandle",
    "ResourceHost",
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
