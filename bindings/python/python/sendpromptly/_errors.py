"""The exceptions of the SendPromptly SDK.

Everything the SDK raises for a failed call or a rejected webhook is a
:class:`SendPromptlyError`. The native module picks the class and fills the
fields; nothing here decides anything.

- :class:`APIError` — the server answered with an error status
  (``status``, ``type``, ``message``, ``param``, ``request_id``), with a
  subclass per status family.
- :class:`TransportError` — no usable answer (could not connect, connection
  closed, timed out), after the retry policy gave up.
- :class:`ValidationError` — a field breaks the contract's limits; nothing was
  sent (also a :class:`ValueError`).
- :class:`ConfigurationError` — a bad API key, URL or setting (also a
  :class:`ValueError`).
- :class:`SignatureVerificationError` — a webhook or repair callback was
  rejected, with a subclass per cause (also a :class:`ValueError`).
"""

from __future__ import annotations

from typing import Optional

__all__ = [
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


class SendPromptlyError(Exception):
    """Base class of every exception the SDK raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        #: What went wrong, for a person (``str(err)`` has every detail).
        self.message: str = message


class APIError(SendPromptlyError):
    """The server answered with an error status.

    ``status`` is the HTTP status, ``type`` the machine-readable error type
    (e.g. ``validation_error``, ``not_found``, ``reprocess_in_flight``;
    ``http_error`` when the body was not a SendPromptly error), ``message``
    the server's message (``str(err)`` has everything), ``param`` the offending field, ``request_id`` the server's
    ``Request-Id`` (quote it to support), ``retry_after`` the seconds the
    server asked to wait, and ``attempts`` how many attempts the call made.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str,
        error_message: str = "",
        param: Optional[str] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status: int = status
        self.type: str = type
        self.message = error_message or message
        self.param: Optional[str] = param
        self.request_id: Optional[str] = request_id
        self.retry_after: Optional[float] = retry_after
        self.attempts: int = attempts


class InvalidRequestError(APIError):
    """400, 413, 415 or 422: the request was refused as invalid (``param``
    names the field)."""


class AuthenticationError(APIError):
    """401: the API key is missing or unknown."""


class NotFoundError(APIError):
    """404: no such object in this project."""


class ConflictError(APIError):
    """409: e.g. ``reprocess_in_flight`` (an earlier repair callback is still
    being delivered)."""


class RateLimitError(APIError):
    """429 after the retry policy gave up (``retry_after`` says how long the
    server asked to wait)."""


class ServerError(APIError):
    """5xx after the retry policy gave up."""


class TransportError(SendPromptlyError):
    """No usable answer from the server after the retry policy gave up.

    ``kind`` is ``connect``, ``connection_closed``, ``timeout`` or ``other``;
    ``url`` the URL called, ``attempts`` how many attempts were made,
    ``elapsed`` the seconds the call took, ``budget_exhausted`` whether the
    call's total time budget ran out.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str = "other",
        url: str = "",
        attempts: int = 0,
        elapsed: float = 0.0,
        budget_exhausted: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind: str = kind
        self.url: str = url
        self.attempts: int = attempts
        self.elapsed: float = elapsed
        self.budget_exhausted: bool = budget_exhausted


class APIConnectionError(TransportError):
    """The connection could not be made, or failed before a complete answer."""


class APITimeoutError(TransportError):
    """An attempt, or the call's total time budget, ran out of time."""


class ValidationError(SendPromptlyError, ValueError):
    """A field breaks the contract's limits (checked with the server's own
    rules before sending; nothing was sent). ``param`` names the field."""

    def __init__(self, message: str, *, param: str = "", error_message: str = "") -> None:
        super().__init__(message)
        self.param: str = param
        self.message = error_message or message


class ConfigurationError(SendPromptlyError, ValueError):
    """The client is misconfigured: no or a malformed API key, a bad base URL,
    an invalid retry setting or environment variable."""


class DecodeError(SendPromptlyError):
    """A success answer whose body could not be read (``status``,
    ``request_id``)."""

    def __init__(self, message: str, *, status: int = 0, request_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.status: int = status
        self.request_id: Optional[str] = request_id


class SignatureVerificationError(SendPromptlyError, ValueError):
    """A webhook or repair callback was rejected.

    ``provider`` is ``stripe``, ``shopify`` or ``sendpromptly`` (repair
    callbacks); ``category`` is ``bad_signature``, ``stale_timestamp``,
    ``malformed`` or ``configuration``; ``code`` names the exact check that
    failed (e.g. ``no_matching_signature``, ``timestamp_outside_tolerance``,
    ``missing_header``).
    """

    def __init__(self, message: str, *, provider: str = "", category: str = "", code: str = "") -> None:
        super().__init__(message)
        self.provider: str = provider
        self.category: str = category
        self.code: str = code


class BadSignatureError(SignatureVerificationError):
    """No signature matches the body and secret (tampered body, wrong
    secret, or the body was re-serialised). Answer 400."""


class StaleTimestampError(SignatureVerificationError):
    """The signed timestamp is outside the tolerance (a replay, or a wrong
    clock). Answer 400."""


class MalformedRequestError(SignatureVerificationError):
    """Signature headers missing or unparseable, or the body is not the
    expected JSON. Answer 400."""


class SecretConfigurationError(SignatureVerificationError):
    """The verifier is misconfigured: no secret, or a malformed one. Fix the
    configuration (a 5xx makes the sender retry later)."""
