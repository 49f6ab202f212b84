"""Stripe webhook verification (``Stripe-Signature``).

    event = sendpromptly.stripe.verify(request.get_data(), request.headers.get("Stripe-Signature"), "whsec_…")

Accepts what the official ``stripe`` package accepts and rejects what it
rejects (the checks are those of its ``Webhook.construct_event``), raising a
:class:`sendpromptly.SignatureVerificationError` subclass naming the cause.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

from . import _native

__all__ = ["verify", "DEFAULT_TOLERANCE"]

#: Seconds a signed timestamp may be old, as in the official SDKs.
DEFAULT_TOLERANCE = 300


def verify(
    payload: Union[bytes, bytearray, memoryview, str],
    sig_header: Optional[Union[str, bytes]],
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE,
) -> Dict[str, Any]:
    """Verifies a Stripe webhook and returns the event as a dict.

    ``payload`` is the raw request body exactly as received (re-serialised
    JSON does not verify), ``sig_header`` the ``Stripe-Signature`` header,
    ``secret`` the endpoint's ``whsec_`` signing secret, ``tolerance`` the
    seconds the signed timestamp may be old (always enforced; ``0`` means
    "not older than now").

    Raises :class:`~sendpromptly.BadSignatureError` (no ``v1`` signature
    matches), :class:`~sendpromptly.StaleTimestampError` (older than the
    tolerance), :class:`~sendpromptly.MalformedRequestError` (header missing
    or unparseable, body not an event) or
    :class:`~sendpromptly.SecretConfigurationError` (empty secret).
    """
    return _native.stripe_verify(payload, sig_header, secret, tolerance)
