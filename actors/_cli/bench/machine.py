"""What every benchmark report says of the machine it ran on."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import ray


def machine() -> dict[str, Any]:
    """Python and Ray versions, CPU count and platform, as a report's fields."""
    return {
        "python": sys.version.split()[0], "ray": ray.__version__, "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }  # fmt: skip
