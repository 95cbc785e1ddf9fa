"""lindyn: what users import and type. The Python client (``from lindyn import Client``) and the CLI."""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lindyn.client import Client, LindynError, NotFound, ValidationFailed

__all__ = ["Client", "LindynError", "NotFound", "ValidationFailed", "__version__"]


def __getattr__(name: str) -> Any:
    """The client on first use (``import lindyn`` stays light for the CLI)."""
    if name in ("Client", "LindynError", "NotFound", "ValidationFailed", "Conflict", "Unauthorized",
                "ServiceUnavailable", "Run"):
        from lindyn import client

        return getattr(client, name)
    raise AttributeError(f"module 'lindyn' has no attribute {name!r}")
