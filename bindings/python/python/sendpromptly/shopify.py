"""Shopify webhook verification (``X-Shopify-Hmac-Sha256``).

    delivery = sendpromptly.shopify.verify(request.get_data(), request.headers, "shpss_…")
    delivery.topic, delivery.dedupe_id, delivery.body

Like Shopify's own validator it requires the ``X-Shopify-Hmac-Sha256``,
``X-Shopify-Topic``, ``X-Shopify-API-Version``, ``X-Shopify-Shop-Domain`` and
``X-Shopify-Webhook-Id`` headers and a non-empty JSON body.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Union

from . import _native
from ._native import ShopifyDelivery

__all__ = ["verify", "ShopifyDelivery"]


def verify(
    body: Union[bytes, bytearray, memoryview, str],
    headers: Union[Mapping[str, Any], Iterable[Any]],
    secret: Union[str, Iterable[str]],
) -> ShopifyDelivery:
    """Verifies a Shopify webhook delivery and returns a
    :class:`~sendpromptly.ShopifyDelivery` (topic, shop domain, webhook and
    event ids, parsed body).

    ``body`` is the raw request body, ``headers`` any mapping of the request
    headers (dict, Flask/Werkzeug, Starlette or Django headers;
    case-insensitive), ``secret`` the app's client secret, or a list of them
    during a rotation.

    Raises :class:`~sendpromptly.BadSignatureError` (the HMAC matches no
    secret), :class:`~sendpromptly.MalformedRequestError` (a required header
    missing, an empty or non-JSON body) or
    :class:`~sendpromptly.SecretConfigurationError` (no secret).
    """
    return _native.shopify_verify(body, headers, secret)
