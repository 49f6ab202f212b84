"""SendPromptly SDK for Python.

A payment webhook handler sends two signals: a **receipt** once it has
durably accepted a Stripe or Shopify event, and a **result** (``success`` or
``failure``) once the business effect is applied. SendPromptly opens an
incident when a result is a failure or never arrives, and sends a signed
**repair callback** when someone asks to reprocess it.

    import sendpromptly

    sp = sendpromptly.Client()  # SENDPROMPTLY_API_KEY, SENDPROMPTLY_URL
    sp.receipt(provider="stripe", event_id="evt_1", event_type="invoice.paid",
               subject="cus_9s8d7f", effect="credits.add")
    sp.success(provider="stripe", event_id="evt_1")

The logic (retries within a time budget, idempotency keys, the background
queue, signature verification) is the Rust SDK's, compiled into
``sendpromptly._native``. See ``docs/python.md``.
"""

from __future__ import annotations

from . import shopify, stripe
from ._integration import EventRef, Tracker, configure, current_event, default_client, track
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadSignatureError,
    ConfigurationError,
    ConflictError,
    DecodeError,
    InvalidRequestError,
    MalformedRequestError,
    NotFoundError,
    RateLimitError,
    SecretConfigurationError,
    SendPromptlyError,
    ServerError,
    SignatureVerificationError,
    StaleTimestampError,
    TransportError,
    ValidationError,
)
from ._native import (
    USER_AGENT,
    AsyncClient,
    Background,
    BackgroundConfig,
    BackgroundStats,
    Client,
    DroppedSignal,
    RepairCallback,
    RepairCallbackEvent,
    RetryConfig,
    RetryOn,
    ShopifyDelivery,
    SignalResponse,
    __version__,
    new_idempotency_key,
    event_ref,
    verify_repair_request,
)

__all__ = [
    "__version__",
    "USER_AGENT",
    "Client",
    "AsyncClient",
    "RetryConfig",
    "RetryOn",
    "Background",
    "BackgroundConfig",
    "BackgroundStats",
    "DroppedSignal",
    "SignalResponse",
    "RepairCallback",
    "RepairCallbackEvent",
    "ShopifyDelivery",
    "new_idempotency_key",
    "verify_repair_request",
    "event_ref",
    "stripe",
    "shopify",
    "track",
    "Tracker",
    "EventRef",
    "configure",
    "default_client",
    "current_event",
    "SendPromptlyError",
    "APIError",
    "InvalidRequestError",
    "AuthenticationError",
    "NotFoundError",
    "ConflictError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "APIConnectionError",
    "APITimeoutError",
    "ValidationError",
    "ConfigurationError",
    "DecodeError",
    "SignatureVerificationError",
    "BadSignatureError",
    "StaleTimestampError",
    "MalformedRequestError",
    "SecretConfigurationError",
]
