"""Flask: Stripe and Shopify webhook views and the repair endpoint.

    from sendpromptly.integrations.flask import stripe_webhook, repair_endpoint

    @app.post("/webhooks/stripe")
    @stripe_webhook(effect="credits.add", event_types=["invoice.paid"])
    def on_stripe(event):            # verified; the receipt is sent
        add_credits.delay(event["id"])
        return {"received": True}

    @app.post("/sendpromptly/repair")
    @repair_endpoint()
    def repair(event):               # a RepairCallbackEvent; raise to report failure
        apply_credits(event.event_id)
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional

try:
    from flask import jsonify, request
except ImportError as _err:  # pragma: no cover - depends on the environment
    from .._integration import missing

    raise missing("Flask", "flask", _err) from _err

from .._integration import Field, Rejection, Sender, WebhookSpec, CURRENT, EventRef, run_repair, verify_repair, webhook_spec

__all__ = ["stripe_webhook", "shopify_webhook", "repair_endpoint"]


def _webhook(spec: WebhookSpec) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(*args: Any, **kwargs: Any) -> Any:
            event = spec.verify(request.get_data(), request.headers)
            if isinstance(event, Rejection):
                return jsonify(event.body), event.status
            if not spec.wanted(event):
                return jsonify(spec.ignored(event)), 200
            spec.receipt(event)
            token = CURRENT.set(EventRef.of(event))
            try:
                return view(event, *args, **kwargs)
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
    the receipt filled from the event, then calls ``view(event, **route_args)``
    with the verified event (a dict). Events whose type is not in
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
    """:func:`stripe_webhook` for Shopify (``X-Shopify-Hmac-Sha256``;
    ``secret`` default ``$SHOPIFY_WEBHOOK_SECRET``, or a list during a
    rotation): the view gets a ``ShopifyDelivery``; ``event_types`` are
    topics."""
    return _webhook(webhook_spec("shopify", secret, client=client, event_types=event_types, subject=subject,
                                 effect=effect, deadline_seconds=deadline_seconds, metadata=metadata))


def repair_endpoint(
    secret: Optional[Any] = None, *, client: Optional[Sender] = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turns the app's fulfilment function ``fulfil(event)`` into the repair
    endpoint's view: verifies the callback (``secret``, default
    ``$SENDPROMPTLY_SIGNING_SECRET``; 400 if it fails), calls ``fulfil`` with
    the ``RepairCallbackEvent``, and reports success (it returned) or failure
    (it raised) with the callback's ``reprocess_id``. Answers 503 when the
    result could not be recorded, so SendPromptly calls again."""

    def decorate(fulfil: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fulfil)
        def handle(*args: Any, **kwargs: Any) -> Any:
            callback = verify_repair(request.get_data(), request.headers, secret)
            if isinstance(callback, Rejection):
                return jsonify(callback.body), callback.status
            status, body = run_repair(callback, fulfil, client, request.headers)
            return jsonify(body), status

        return handle

    return decorate
