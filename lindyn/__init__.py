"""lindyn: what users import and type. The Python client (``from lindyn import Client``) and the CLI."""

__version__ = "0.1.0"
