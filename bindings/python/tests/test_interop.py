"""Signatures made by the official packages verify; tampered ones raise the
right exception; headers work from any mapping, in any letter case."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict

import pytest
import stripe
from standardwebhooks import Webhook
from werkzeug.datastructures import Headers

import sendpromptly
from conftest import signed_callback

STRIPE_SECRET = "whsec_test_python_interop"
CALLBACK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

STRIPE_EVENT: Dict[str, Any] = {
    "id": "evt_1PyInterop",
    "object": "event",
    "type": "invoice.paid",
    "created": 1_790_000_000,
    "livemode": False,
    "api_version": "2025-07-30.basil",
    "data": {
        "object": {
            "id": "in_1",
            "object": "invoice",
            "customer": "cus_9s8d7f",
            "amount_paid": 500,
            "currency": "usd",
            "status": "paid",
        }
    },
}


def stripe_signed(payload: str, timestamp: Any = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET, timestamp)


def test_stripe_signature_from_the_official_package_verifies() -> None:
    payload = json.dumps(STRIPE_EVENT)
    header = stripe_signed(payload)
    # The official package agrees the header is valid …
    stripe.Webhook.construct_event(payload, header, STRIPE_SECRET)
    # … and so does ours, for str and bytes payloads.
    event = sendpromptly.stripe.verify(payload, header, STRIPE_SECRET)
    assert event == STRIPE_EVENT
    assert sendpromptly.stripe.verify(payload.encode(), header, STRIPE_SECRET, tolerance=300)["id"] == "evt_1PyInterop"


@pytest.mark.parametrize(
    "mutate, expected, code",
    [
        (lambda p, h: (p.replace("500", "50000"), h), sendpromptly.BadSignatureError, "no_matching_signature"),
        (lambda p, h: (p, h.replace("v1=", "v0=")), sendpromptly.BadSignatureError, "no_v1_signature"),
        (lambda p, h: (p, "garbage"), sendpromptly.MalformedRequestError, "malformed_header"),
        (lambda p, h: (p, None), sendpromptly.MalformedRequestError, "missing_header"),
        (lambda p, h: (p, ""), sendpromptly.MalformedRequestError, "missing_header"),
    ],
)
def test_tampered_stripe_webhooks_are_rejected_like_the_official_package(mutate: Any, expected: Any, code: str) -> None:
    payload = json.dumps(STRIPE_EVENT)
    payload, header = mutate(payload, stripe_signed(payload))
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, STRIPE_SECRET)
    with pytest.raises(expected) as info:
        sendpromptly.stripe.verify(payload, header, STRIPE_SECRET)
    assert info.value.code == code
    assert info.value.provider == "stripe"
    assert isinstance(info.value, sendpromptly.SignatureVerificationError)
    assert isinstance(info.value, ValueError)


def test_stale_stripe_signature_raises_stale_timestamp() -> None:
    payload = json.dumps(STRIPE_EVENT)
    header = stripe_signed(payload, int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, STRIPE_SECRET)
    with pytest.raises(sendpromptly.StaleTimestampError) as info:
        sendpromptly.stripe.verify(payload, header, STRIPE_SECRET)
    assert info.value.category == "stale_timestamp"
    # A wider tolerance accepts it.
    assert sendpromptly.stripe.verify(payload, header, STRIPE_SECRET, tolerance=7200)["id"] == STRIPE_EVENT["id"]


def test_stripe_wrong_secret_and_missing_secret() -> None:
    payload = json.dumps(STRIPE_EVENT)
    with pytest.raises(sendpromptly.BadSignatureError):
        sendpromptly.stripe.verify(payload, stripe_signed(payload), "whsec_other")
    with pytest.raises(sendpromptly.SecretConfigurationError):
        sendpromptly.stripe.verify(payload, stripe_signed(payload), "")


def callback_body(reprocess_id: str = "rep_01PY") -> bytes:
    return json.dumps(
        {
            "type": "reprocess.requested",
            "reprocess_id": reprocess_id,
            "incident_id": "inc_01PY",
            "attempt": 1,
            "requested_at": "2026-11-22T10:00:00Z",
            "requested_by": "console:alice@example.com",
            "event": {
                "provider": "stripe",
                "event_id": "evt_1Q2w3E",
                "event_type": "invoice.paid",
                "subject": "cus_9s8d7f",
                "effect": "credits.add",
                "metadata": {"credits": 500},
            },
        }
    ).encode()


def test_callback_signed_by_standardwebhooks_verifies_from_any_mapping() -> None:
    body = callback_body()
    headers = signed_callback(CALLBACK_SECRET, body, "rep_01PY")
    upper = {k.upper(): v for k, v in headers.items()}
    werkzeug = Headers(list(headers.items()))
    pairs = list(headers.items())
    for container in (headers, upper, werkzeug, pairs, Headers([(k.title(), v) for k, v in headers.items()])):
        callback = sendpromptly.verify_repair_request(body, container, CALLBACK_SECRET)
        assert callback.reprocess_id == "rep_01PY"
        assert callback.event.subject == "cus_9s8d7f"
        assert callback.event.effect == "credits.add"
        assert callback.to_dict()["event"]["metadata"] == {"credits": 500}
    # Byte-string headers (ASGI) and a list of secrets (rotation).
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    assert sendpromptly.verify_repair_request(bytearray(body), raw, ["whsec_" + "A" * 32, CALLBACK_SECRET]).attempt == 1


def test_starlette_and_django_style_headers() -> None:
    body = callback_body()
    headers = signed_callback(CALLBACK_SECRET, body, "rep_01PY")
    try:
        from starlette.datastructures import Headers as StarletteHeaders
    except ImportError:
        StarletteHeaders = None
    if StarletteHeaders is not None:
        assert sendpromptly.verify_repair_request(body, StarletteHeaders(headers), CALLBACK_SECRET)

    class CaseInsensitiveMapping:  # the shape of Django's request.headers
        def __init__(self, data: Dict[str, str]) -> None:
            self._data = {k.title(): v for k, v in data.items()}

        def items(self) -> Any:
            return self._data.items()

        def __getitem__(self, key: str) -> str:
            return self._data[key.title()]

    assert sendpromptly.verify_repair_request(body, CaseInsensitiveMapping(headers), CALLBACK_SECRET)


@pytest.mark.parametrize(
    "tamper, expected, code",
    [
        (lambda b, h: (b.replace(b"500", b"501"), h), sendpromptly.BadSignatureError, "no_matching_signature"),
        (lambda b, h: (b, {**h, "webhook-id": "rep_other"}), sendpromptly.BadSignatureError, "no_matching_signature"),
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "webhook-signature"}), sendpromptly.MalformedRequestError, "missing_header"),
        (lambda b, h: (b, {**h, "webhook-timestamp": "soon"}), sendpromptly.MalformedRequestError, "malformed_timestamp"),
    ],
)
def test_tampered_callbacks_raise_the_right_exception(tamper: Any, expected: Any, code: str) -> None:
    body, headers = tamper(callback_body(), signed_callback(CALLBACK_SECRET, callback_body(), "rep_01PY"))
    with pytest.raises(Exception):
        Webhook(CALLBACK_SECRET).verify(body, headers)
    with pytest.raises(expected) as info:
        sendpromptly.verify_repair_request(body, headers, CALLBACK_SECRET)
    assert info.value.code == code
    assert info.value.provider == "sendpromptly"


def test_stale_callback_and_bad_secret() -> None:
    body = callback_body()
    old = signed_callback(CALLBACK_SECRET, body, "rep_01PY", timestamp=int(time.time()) - 600)
    with pytest.raises(sendpromptly.StaleTimestampError) as info:
        sendpromptly.verify_repair_request(body, old, CALLBACK_SECRET)
    assert info.value.code == "timestamp_too_old"
    fresh = signed_callback(CALLBACK_SECRET, body, "rep_01PY")
    with pytest.raises(sendpromptly.SecretConfigurationError):
        sendpromptly.verify_repair_request(body, fresh, "not-a-secret")
    with pytest.raises(sendpromptly.SecretConfigurationError):
        sendpromptly.verify_repair_request(body, fresh, [])


def test_a_signed_body_that_is_not_a_callback_is_malformed() -> None:
    body = json.dumps({"type": "incident.opened", "incident": {}}).encode()
    headers = signed_callback(CALLBACK_SECRET, body, "msg_1")
    with pytest.raises(sendpromptly.MalformedRequestError):
        sendpromptly.verify_repair_request(body, headers, CALLBACK_SECRET)


SHOPIFY_SECRET = "shpss_python_interop"


def shopify_headers(body: bytes, secret: str = SHOPIFY_SECRET) -> Dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-API-Version": "2025-07",
        "X-Shopify-Shop-Domain": "example.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        "X-Shopify-Triggered-At": "2026-11-22T10:00:00Z",
    }


def test_shopify_verify() -> None:
    body = b'{"id": 820982911946154508, "email": "jon@example.com", "total_price": "10.00"}'
    headers = shopify_headers(body)
    delivery = sendpromptly.shopify.verify(body, Headers(list(headers.items())), SHOPIFY_SECRET)
    assert delivery.topic == "orders/paid"
    assert delivery.dedupe_id == "98880550-7158-44d4-b7cd-2c97c8a091b5"
    assert delivery.body["id"] == 820982911946154508
    assert delivery.triggered_at is not None and delivery.triggered_at.startswith("2026-11-22T10:00:00")
    lower = {k.lower(): v for k, v in headers.items()}
    assert sendpromptly.shopify.verify(body, lower, ["shpss_old", SHOPIFY_SECRET]).shop_domain == "example.myshopify.com"

    with pytest.raises(sendpromptly.BadSignatureError):
        sendpromptly.shopify.verify(body.replace(b"10.00", b"0.01"), headers, SHOPIFY_SECRET)
    missing = {k: v for k, v in headers.items() if k != "X-Shopify-Topic"}
    with pytest.raises(sendpromptly.MalformedRequestError) as info:
        sendpromptly.shopify.verify(body, missing, SHOPIFY_SECRET)
    assert info.value.code == "missing_headers"
    with pytest.raises(sendpromptly.SecretConfigurationError):
        sendpromptly.shopify.verify(body, headers, [])


def test_verifiers_reject_bad_argument_types() -> None:
    with pytest.raises(TypeError):
        sendpromptly.verify_repair_request(12, {}, CALLBACK_SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sendpromptly.verify_repair_request(b"{}", "webhook-id: x", CALLBACK_SECRET)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sendpromptly.verify_repair_request(b"{}", {"webhook-id": 1}, CALLBACK_SECRET)
    with pytest.raises(TypeError):
        sendpromptly.verify_repair_request(b"{}", {}, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sendpromptly.stripe.verify(b"{}", "t=1,v1=00", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sendpromptly.stripe.verify(b"{}", "t=1,v1=00", STRIPE_SECRET, tolerance=-5)
