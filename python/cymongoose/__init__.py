"""cymongoose: event-driven networking (HTTP, WebSocket, MQTT, TLS, DNS, SNTP) on a C core.

Every public name of the compiled module ``cymongoose._mongoose`` is
re-exported here; see ``__all__``.
"""
from . import _mongoose
from ._mongoose import *  # noqa: F401,F403
from ._logging import log_to_logging, log_to_stderr  # noqa: F401
from ._version import __version__

__all__ = sorted(name for name in dir(_mongoose) if not name.startswith("_"))
__all__ += ["log_to_logging", "log_to_stderr"]

try:  # the asyncio adapter is pure Python glue
    from .aio import AsyncManager  # noqa: F401
except ImportError:  # pragma: no cover - only while aio.py does not exist
    pass
else:
    __all__.append("AsyncManager")
