"""FastAPI: the Starlette integration (:mod:`sendpromptly.integrations.starlette`)."""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the environment
    from .._integration import missing

    raise missing("FastAPI", "fastapi", _err) from _err

from .starlette import repair_endpoint, shopify_webhook, stripe_webhook

__all__ = ["stripe_webhook", "shopify_webhook", "repair_endpoint"]
