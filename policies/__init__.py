"""Frozen policy values and pure decision functions. Never imports ray."""

from ._authority import WriteAuthority as WriteAuthority
from ._resource import Durability as Durability
from ._resource import ResourcePolicy as ResourcePolicy

__all__ = ["Durability", "ResourcePolicy", "WriteAuthority"]
