"""Agents, resources and the system that runs them on Ray."""

from ._agent import Agent as Agent
from ._agent import handler as handler
from ._agent_host import AgentHost as AgentHost
from ._calls import ReadResult as ReadResult
from ._calls import WriteCall as WriteCall
from ._calls import WriteResult as WriteResult
from ._resource import Resource as Resource
from ._resource import read as read
from ._resource import write as write
from ._resource_core import ResourceCore as ResourceCore
from ._resource_handle import AsyncResourceHandle as AsyncResourceHandle
from ._resource_handle import Reconnect as Reconnect
from ._resource_handle import ResourceHandle as ResourceHandle
from ._resource_handle import Write as Write
from ._resource_host import ResourceHost as ResourceHost
from ._system import AgentGroup as AgentGroup
from ._system import System as System

__all__ = [
    "Agent",
    "AgentGroup",
    "AgentHost",
    "AsyncResourceHandle",
    "ReadResult",
    "Reconnect",
    "Resource",
    "ResourceCore",
    "ResourceHandle",
    "ResourceHost",
    "System",
    "Write",
    "WriteCall",
    "WriteResult",
    "handler",
    "read",
    "write",
]
