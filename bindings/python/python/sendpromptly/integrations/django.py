"""Django: Stripe and Shopify webhook views and the repair endpoint.

    from sendpromptly.integrations.django import stripe_webhook, repair_endpoint

    @stripe_webhook(effect="credits.add", event_types=["invoice.paid"])
    def on_stripe(request, event):   # verified; the receipt is sent
        add_credits.delay(event["id"])
        return JsonResponse({"received": True})

    @repair_endpoint()
    def repair(event):               # a RepairCallbackEvent; raise to report failure
        apply_credits(event.event_id)

    urlpatterns = [path("webhooks/stripe", on_stripe), path("sendpromptly/repair", repair)]

The views are CSRF-exempt and answer only POST (405 otherwise). A view may
return an ``HttpResponse``, a dict (sent as JSON) or ``None``
(``{"received": true}``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

try:
    from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse  # type: ignore[import-untyped]
    from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]
    from django.views.decorators.http import require_POST  # type: ignore[import-untyped]
except ImportError as _err:  # pragma: no cover - depends on the environment
    from .._integration import missing

    raise missing("Django", "django", _err) from _err

from .._integration import EventRef, Field, Rejection, Sender, WebhookSpec, CURRENT, run_repair, verify_repair, webhook_spec

__all__ = ["stripe_webhook", "shopify_webhook", "repair_endpoint"]


def _response(value: Any) -> HttpResponseBase:
    if isinstance(value, HttpResponseBase):
        return value
    return JsonResponse({"received": True} if value is None else value, safe=False)


def _webhook(spec: WebhookSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @csrf_exempt
        @require_POST
        @functools.wraps(view)
        def handle(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            event = spec.verify(request.body, request.headers)
            if isinstance(event, Rejection):
                return JsonResponse(event.body, status=event.status)
            if not spec.wanted(event):
                return JsonResponse(spec.ignored(event))
            spec.receipt(event)
            token = CURRENT.set(EventRef.of(event))
            try:
                return _response(view(request, event, *args, **kwargs))
            finally:
                CURRENT.reset(token)

        return handle

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
    the receipt filled from the event, then calls
    ``view(request, event, *url_args)``. Events whose type is not in
    ``event_types`` are answered 200 without a receipt. ``subject``,
    ``effect``, ``deadline_seconds`` and ``metadata`` are values or
    functions of the event."""
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
    """Turns ``fulfil(event)`` into the repair endpoint's view: verifies the
    callback (``secret``, default ``$SENDPROMPTLY_SIGNING_SECRET``; 400 if it
    fails), calls ``fulfil`` with the ``RepairCallbackEvent`` and reports the
    result with the ``reprocess_id``; 503 when it could not be recorded, so
    SendPromptly calls again."""

    def decorate(fulfil: Callable[..., Any]) -> Callable[..., Any]:
        @csrf_exempt
        @require_POST
        @functools.wraps(fulfil)
        def handle(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            callback = verify_repair(request.body, request.headers, secret)
            if isinstance(callback, Rejection):
                return JsonResponse(callback.body, status=callback.status)
            status, body = run_repair(callback, fulfil, client, request.headers)
            return JsonResponse(body, status=status)

        return handle

    return decorate
