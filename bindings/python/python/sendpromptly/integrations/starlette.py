"""Starlette and FastAPI: Stripe and Shopify webhook endpoints and the repair
endpoint.

    from sendpromptly.integrations.starlette import stripe_webhook, repair_endpoint

    @app.post("/webhooks/stripe")
    @stripe_webhook(effect="credits.add", event_types=["invoice.paid"])
    async def on_stripe(request, event):   # verified; the receipt is sent
        add_credits.delay(event["id"])
        return {"received": True}

    @app.post("/sendpromptly/repair")
    @repair_endpoint()
    async def repair(event):               # a RepairCallbackEvent; raise to report failure
        await apply_credits(event.event_id)

The decorated endpoint takes the ``Request`` (FastAPI injects it); the view
may be sync (run in the thread pool) or async and may return a ``Response``,
a JSON-able value or ``None`` (``{"received": true}``).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
except ImportError as _err:  # pragma: no cover - depends on the environment
    from .._integration import missing

    raise missing("Starlette (FastAPI)", "starlette", _err) from _err

from .._integration import EventRef, Field, Rejection, Sender, WebhookSpec, CURRENT, run_repair_async, verify_repair, webhook_spec

__all__ = ["stripe_webhook", "shopify_webhook", "repair_endpoint"]


def _response(value: Any) -> Response:
    if isinstance(value, Response):
        return value
    return JSONResponse({"received": True} if value is None else value)


def _named(endpoint: Callable[..., Any], view: Callable[..., Any]) -> Callable[..., Any]:
    # Not functools.wraps: FastAPI reads the signature, and must see `request`.
    endpoint.__name__ = getattr(view, "__name__", endpoint.__name__)
    endpoint.__qualname__ = getattr(view, "__qualname__", endpoint.__qualname__)
    endpoint.__doc__ = view.__doc__
    return endpoint


def _webhook(spec: WebhookSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            event = spec.verify(await request.body(), request.headers)
            if isinstance(event, Rejection):
                return JSONResponse(event.body, status_code=event.status)
            if not spec.wanted(event):
                return JSONResponse(spec.ignored(event))
            await spec.receipt_async(event)
            token = CURRENT.set(EventRef.of(event))
            try:
                if inspect.iscoroutinefunction(view):
                    return _response(await view(request, event))
                return _response(await run_in_threadpool(view, request, event))
            finally:
                CURRENT.reset(token)

        return _named(endpoint, view)

    return decorate


def stripe_webhook(
    secret: Optional[str] = None,
    *,
    client: Optional[Sender] = None,
    event_types: Optional[Any] = None,
    subject: Field = None,
    effect: Field = None,
    deadline_seconds: Field = None,
    metadata: Field = None,
    tolerance: int = 300,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Verifies the ``Stripe-Signature`` (``secret``, default
    ``$STRIPE_WEBHOOK_SECRET``) — 400 naming the cause if it fails — sends
    the receipt filled from the event, then calls ``view(request, event)``.
    Events whose type is not in ``event_types`` are answered 200 without a
    receipt. ``subject``, ``effect``, ``deadline_seconds`` and ``metadata``
    are values or functions of the event."""
    return _webhook(webhook_spec("stripe", secret, client=client, event_types=event_types, subject=subject,
                                 effect=effect, deadline_seconds=deadline_seconds, metadata=metadata, tolerance=tolerance))


def shopify_webhook(
    secret: Optional[Any] = None,
    *,
    client: Optional[Sender] = None,
    event_types: Optional[Any] = None,
    subject: Field = None,
    effect: Field = None,
    deadline_seconds: Field = None,
    metadata: Field = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """:func:`stripe_webhook` for Shopify: the view gets a
    ``ShopifyDelivery``; ``event_types`` are topics; ``secret`` default
    ``$SHOPIFY_WEBHOOK_SECRET``."""
    return _webhook(webhook_spec("shopify", secret, client=client, event_types=event_types, subject=subject,
                                 effect=effect, deadline_seconds=deadline_seconds, metadata=metadata))


def repair_endpoint(
    secret: Optional[Any] = None, *, client: Optional[Sender] = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turns ``fulfil(event)`` (sync or async) into the repair endpoint:
    verifies the callback (``secret``, default ``$SENDPROMPTLY_SIGNING_SECRET``;
    400 if it fails), calls ``fulfil`` with the ``RepairCallbackEvent`` and
    reports the result with the ``reprocess_id``; 503 when it could not be
    recorded, so SendPromptly calls again."""

    def decorate(fulfil: Callable[..., Any]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            callback = verify_repair(await request.body(), request.headers, secret)
            if isinstance(callback, Rejection):
                return JSONResponse(callback.body, status_code=callback.status)
            if inspect.iscoroutinefunction(fulfil):
                run = fulfil
            else:
                async def run(event: Any) -> Any:
                    return await run_in_threadpool(fulfil, event)
            status, body = await run_repair_async(callback, run, client, request.headers)
            return JSONResponse(body, status_code=status)

        return _named(endpoint, fulfil)

    return decorate
