"""The astrodash HTTP API: a Starlette ASGI application compatible with AstroDASH 2.0 clients.

``create_app(settings=None, classifier=None)`` builds it; ``astrodash serve`` runs it on uvicorn.
"""
from .app import create_app
from .settings import Settings

__all__ = ["create_app", "Settings"]
