"""What every integration shares: the event reference, the default client,
``track``, and the framework-free halves of the webhook and repair helpers.

Instrumentation never changes how the app behaves: a signal that cannot be
sent is logged on the ``sendpromptly`` logger, never raised, and a send takes
at most the client's time budget (``RetryConfig.total_budget``, 3 s by
default), or nothing at all in background mode (``client.background()``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, TypeVar, Union, cast

from . import _native, _otel, shopify, stripe
from ._errors import SendPromptlyError, SignatureVerificationError
from ._native import AsyncClient, Background, Client, RepairCallbackEvent, ShopifyDelivery

__all__ = [
    "EventRef",
    "Tracker",
    "configure",
    "current_event",
    "default_client",
    "track",
]

log = logging.getLogger("sendpromptly")

#: What signals are sent with: a blocking ``Client``, an ``AsyncClient`` or
#: a ``Background`` queue.
Sender = Union[Client, AsyncClient, Background]
F = TypeVar("F", bound=Callable[..., Any])

# Longest error text sent with a failure; the rest of a long message is cut.
_MAX_ERROR_CHARS = 1000


class EventRef(NamedTuple):
    """The provider event a piece of work applies the effect of: provider,
    event id, and the reprocess it answers (repairs only)."""

    provider: str
    event_id: str
    reprocess_id: Optional[str] = None

    @classmethod
    def of(cls, target: Any) -> "EventRef":
        """The reference of a verified Stripe event (dict), a
        ``ShopifyDelivery``, a ``RepairCallback`` or an ``EventRef``."""
        if isinstance(target, EventRef):
            return target
        provider, event_id, reprocess_id = _native.event_ref(target)
        return cls(provider, event_id, reprocess_id)

    def to_dict(self) -> Dict[str, str]:
        """A JSON-safe form, as carried in a job's headers."""
        out = {"provider": self.provider, "event_id": self.event_id}
        if self.reprocess_id:
            out["reprocess_id"] = self.reprocess_id
        return out

    @classmethod
    def from_dict(cls, value: Any) -> Optional["EventRef"]:
        """The reference :meth:`to_dict` made, or ``None`` for anything else."""
        if not isinstance(value, Mapping):
            return None
        provider, event_id = value.get("provider"), value.get("event_id")
        if not isinstance(provider, str) or not isinstance(event_id, str):
            return None
        reprocess_id = value.get("reprocess_id")
        return cls(provider, event_id, reprocess_id if isinstance(reprocess_id, str) else None)


# The event being handled in this context (set by ``track`` and by the
# webhook and repair helpers); jobs enqueued meanwhile carry it.
CURRENT: "contextvars.ContextVar[Optional[EventRef]]" = contextvars.ContextVar(
    "sendpromptly_current_event", default=None
)


def current_event() -> Optional[EventRef]:
    """The event being handled here: inside ``track``, a webhook or repair
    helper's view, or a Celery task that carries one; else ``None``."""
    return CURRENT.get()

_default: Optional[Sender] = None


def configure(client: Optional[Sender]) -> None:
    """Sets the client the integrations use when none is passed to them:
    a ``Client`` (each send waits at most its time budget), an
    ``AsyncClient``, or ``client.background()`` (sends never wait).
    ``None`` goes back to ``Client.from_env()``."""
    global _default
    _default = client


def default_client() -> Optional[Sender]:
    """The client set by :func:`configure`, else one built once from
    ``SENDPROMPTLY_API_KEY``/``SENDPROMPTLY_URL`` (``None``, logged, when
    they are not set)."""
    global _default
    if _default is None:
        try:
            _default = Client.from_env()
        except SendPromptlyError as err:
            log.warning("SendPromptly is not configured, no signal is sent: %s", err)
            return None
    return _default


def describe(exc: BaseException) -> Tuple[str, str]:
    """The error text and the type name sent with a failure."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    message = str(exc)
    text = f"{name}: {message}" if message else name
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 1] + "…"
    return text, name


def _result_call(
    ref: EventRef, exc: Optional[BaseException], metadata: Optional[Mapping[str, Any]]
) -> Tuple[str, Dict[str, Any]]:
    kwargs: Dict[str, Any] = {"provider": ref.provider, "event_id": ref.event_id}
    if ref.reprocess_id:
        kwargs["reprocess_id"] = ref.reprocess_id
    meta = dict(metadata or {})
    if exc is None:
        method = "success"
    else:
        method = "failure"
        kwargs["error"], meta["error_type"] = describe(exc)
    if meta:
        kwargs["metadata"] = meta
    return method, kwargs


def _sent(what: str, ref: Any, call: Callable[[], Any]) -> bool:
    try:
        answer = call()
    except Exception as err:  # noqa: BLE001 - instrumentation never raises
        log.warning("SendPromptly %s for %s not sent: %s", what, ref, err)
        return False
    return answer is not False  # Background answers False when it dropped it


async def _sent_async(what: str, ref: Any, client: Sender, method: str, kwargs: Dict[str, Any]) -> bool:
    try:
        if isinstance(client, AsyncClient):
            answer = await getattr(client, method)(**kwargs)
        elif isinstance(client, Background):
            answer = getattr(client, method)(**kwargs)
        else:  # a blocking Client: off the event loop
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(None, functools.partial(getattr(client, method), **kwargs))
    except Exception as err:  # noqa: BLE001 - instrumentation never raises
        log.warning("SendPromptly %s for %s not sent: %s", what, ref, err)
        return False
    return answer is not False


def report(
    ref: EventRef,
    exc: Optional[BaseException] = None,
    *,
    client: Optional[Sender] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> bool:
    """Sends ``success`` (``exc`` is ``None``) or ``failure`` for ``ref``;
    ``True`` when it was recorded (or queued in background mode). Never
    raises."""
    sender = client or default_client()
    if sender is None:
        return False
    if isinstance(sender, AsyncClient):
        log.warning("SendPromptly result for %s not sent: an AsyncClient needs `async with`; pass a Client", ref)
        return False
    method, kwargs = _result_call(ref, exc, metadata)
    return _sent(method, ref, lambda: getattr(sender, method)(**kwargs))


async def report_async(
    ref: EventRef,
    exc: Optional[BaseException] = None,
    *,
    client: Optional[Sender] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> bool:
    """:func:`report` for coroutines: awaits an ``AsyncClient``, runs a
    blocking ``Client`` in the default executor."""
    sender = client or default_client()
    if sender is None:
        return False
    method, kwargs = _result_call(ref, exc, metadata)
    return await _sent_async(method, ref, sender, method, kwargs)


def _is_retry(exc: BaseException) -> bool:
    # Celery's `self.retry()` raises Retry: the task is not over yet.
    return type(exc).__name__ == "Retry" and type(exc).__module__.startswith("celery.")


class Tracker:
    """What :func:`track` returns: a decorator, a context manager and an
    async context manager."""

    def __init__(
        self,
        target: Any = None,
        *,
        provider: Optional[str] = None,
        event_id: Optional[str] = None,
        reprocess_id: Optional[str] = None,
        arg: str = "event",
        client: Optional[Sender] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._target = target
        self._provider = provider
        self._event_id = event_id
        self._reprocess_id = reprocess_id
        self._arg = arg
        self._client = client
        self._metadata = metadata
        self._scopes: List[_Scope] = []

    def _ref(self, value: Any = None) -> Optional[EventRef]:
        """The reference from the fixed target, or from ``value`` (the
        decorated function's argument); ``None`` (logged) when there is none."""
        try:
            if self._target is not None:
                return EventRef.of(self._target)
            if self._event_id is not None or isinstance(value, str):
                event_id = self._event_id if self._event_id is not None else value
                if not self._provider:
                    raise ValueError("an event id needs provider= (\"stripe\", \"shopify\" or \"custom\")")
                return EventRef(self._provider, cast(str, event_id), self._reprocess_id)
            if value is None:
                ambient = CURRENT.get()
                if ambient is None:
                    raise ValueError(
                        f"no event: pass track(event) or name the argument holding it with arg= (now {self._arg!r})"
                    )
                return ambient
            return EventRef.of(value)
        except Exception as err:  # noqa: BLE001 - instrumentation never raises
            log.warning("SendPromptly track: no result will be sent: %s", err)
            return None

    def _scope_for(self, ref: Optional[EventRef]) -> "_Scope":
        return _Scope(ref, self._client, self._metadata)

    def __enter__(self) -> Optional[EventRef]:
        scope = self._scope_for(self._ref())
        self._scopes.append(scope)
        return scope.__enter__()

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self._scopes.pop().__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Optional[EventRef]:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        await self._scopes.pop().__aexit__(exc_type, exc, tb)

    def _argument(self, fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if self._target is not None or self._event_id is not None:
            return None
        try:
            return inspect.signature(fn).bind_partial(*args, **kwargs).arguments.get(self._arg)
        except TypeError:
            return None  # the call itself is wrong: the function raises it

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self._scope_for(self._ref(self._argument(fn, args, kwargs))):
                    return await fn(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._scope_for(self._ref(self._argument(fn, args, kwargs))):
                return fn(*args, **kwargs)

        return cast(F, run)


class _Scope:
    """One tracked run: sets :func:`current_event`, reports how it ended."""

    def __init__(self, ref: Optional[EventRef], client: Optional[Sender], metadata: Optional[Mapping[str, Any]]) -> None:
        self.ref, self.client, self.metadata = ref, client, metadata
        self.token: Optional[contextvars.Token] = None

    def _outcome(self, exc: Optional[BaseException]) -> Tuple[bool, Optional[BaseException]]:
        """Whether to send, and the failure to send (``None``: success)."""
        CURRENT.reset(self.token)  # type: ignore[arg-type]
        if self.ref is None:
            return False, None
        if exc is None:
            return True, None
        if not isinstance(exc, Exception) or _is_retry(exc):
            return False, None  # cancelled, interrupted or to be retried: not a result
        return True, exc

    def __enter__(self) -> Optional[EventRef]:
        self.token = CURRENT.set(self.ref or CURRENT.get())
        return self.ref

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        send, failure = self._outcome(exc)
        if send and self.ref is not None:
            report(self.ref, failure, client=self.client, metadata=self.metadata)
        # Returns None: never swallows the app's exception.

    async def __aenter__(self) -> Optional[EventRef]:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        send, failure = self._outcome(exc)
        if send and self.ref is not None:
            await report_async(self.ref, failure, client=self.client, metadata=self.metadata)


def track(
    target: Any = None,
    *,
    provider: Optional[str] = None,
    event_id: Optional[str] = None,
    reprocess_id: Optional[str] = None,
    arg: str = "event",
    client: Optional[Sender] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> Any:
    """Reports the result of the code that applies one provider event's
    effect: ``success`` when it returns, ``failure`` (the exception's type and
    message) when it raises — the exception is re-raised unchanged.

    The event is ``target`` (a verified Stripe event, a ``ShopifyDelivery``,
    a ``RepairCallback``, an ``EventRef``), or ``provider=`` and
    ``event_id=``; as a decorator without either, the function's argument
    named ``arg`` (default ``event``) holds it (or its id, with
    ``provider=``), and failing that the event being handled
    (:func:`current_event`, e.g. in a job enqueued by a webhook helper).

        @sendpromptly.track
        def add_credits(event): ...

        with sendpromptly.track(event):
            add_credits(event)

        async with sendpromptly.track(provider="stripe", event_id=event_id):
            await add_credits(event_id)
    """
    if callable(target) and not isinstance(target, (EventRef, Mapping, Tracker)):
        return Tracker(arg=arg, provider=provider, client=client, metadata=metadata)(target)
    return Tracker(
        target,
        provider=provider,
        event_id=event_id,
        reprocess_id=reprocess_id,
        arg=arg,
        client=client,
        metadata=metadata,
    )


# --- Webhooks: verify, receipt, hand over the event ------------------------

Field = Union[Any, Callable[[Any], Any]]


def _value(field: Field, event: Any) -> Any:
    return field(event) if callable(field) else field


@dataclass
class Rejection:
    """A webhook or repair callback refused: the HTTP status and JSON body."""

    status: int
    body: Dict[str, Any]


@dataclass
class WebhookSpec:
    """How one webhook route verifies and records its events."""

    provider: str
    secret: Optional[Union[str, Iterable[str]]]
    client: Optional[Sender]
    event_types: Optional[Iterable[str]]
    subject: Field
    effect: Field
    deadline_seconds: Field
    metadata: Field
    tolerance: int

    def _env(self) -> str:
        return "STRIPE_WEBHOOK_SECRET" if self.provider == "stripe" else "SHOPIFY_WEBHOOK_SECRET"

    def verify(self, body: bytes, headers: Any) -> Union[Any, Rejection]:
        """The verified event (Stripe dict or ``ShopifyDelivery``), or the
        answer naming why not: 400 for the request, 500 for a missing secret."""
        secret = self.secret if self.secret is not None else os.environ.get(self._env(), "")
        if not secret:
            return _no_secret(f"the {self.provider} webhook secret", self._env())
        try:
            if self.provider == "stripe":
                return stripe.verify(body, headers.get("Stripe-Signature"), cast(str, secret), self.tolerance)
            return shopify.verify(body, headers, secret)
        except SignatureVerificationError as err:
            log.warning("%s webhook refused: %s", self.provider, err)
            return Rejection(400, {"error": str(err), "code": err.code})

    def wanted(self, event: Any) -> bool:
        if self.event_types is None:
            return True
        kind = event.topic if isinstance(event, ShopifyDelivery) else event.get("type")
        return kind in set(self.event_types)

    def ignored(self, event: Any) -> Dict[str, Any]:
        kind = event.topic if isinstance(event, ShopifyDelivery) else event.get("type")
        return {"ignored": kind}

    def _receipt_kwargs(self, event: Any) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {}
        for name in ("subject", "effect", "deadline_seconds", "metadata"):
            value = _value(getattr(self, name), event)
            if value is not None:
                kwargs[name] = value
        return kwargs

    def receipt(self, event: Any) -> bool:
        """Sends the receipt; never raises."""
        sender = self.client or default_client()
        if sender is None:
            return False
        if isinstance(sender, AsyncClient):
            log.warning("SendPromptly receipt not sent: an AsyncClient needs an async view; pass a Client")
            return False
        try:
            kwargs = self._receipt_kwargs(event)
        except Exception as err:  # noqa: BLE001
            log.warning("SendPromptly receipt not sent: the receipt fields raised %r", err)
            return False
        return _sent("receipt", _describe_event(event), lambda: sender.receipt_for(event, **kwargs))

    async def receipt_async(self, event: Any) -> bool:
        sender = self.client or default_client()
        if sender is None:
            return False
        try:
            kwargs = self._receipt_kwargs(event)
        except Exception as err:  # noqa: BLE001
            log.warning("SendPromptly receipt not sent: the receipt fields raised %r", err)
            return False
        return await _sent_async("receipt", _describe_event(event), sender, "receipt_for", {"event": event, **kwargs})


def _describe_event(event: Any) -> str:
    if isinstance(event, ShopifyDelivery):
        return f"shopify {event.topic} {event.webhook_id}"
    return f"stripe {event.get('id')}"


def webhook_spec(provider: str, secret: Any, **options: Any) -> WebhookSpec:
    return WebhookSpec(
        provider=provider,
        secret=secret,
        client=options.get("client"),
        event_types=options.get("event_types"),
        subject=options.get("subject"),
        effect=options.get("effect"),
        deadline_seconds=options.get("deadline_seconds"),
        metadata=options.get("metadata"),
        tolerance=options.get("tolerance", stripe.DEFAULT_TOLERANCE),
    )


# --- Repair endpoints: verify, fulfil, report with the reprocess_id --------


def _no_secret(what: str, env: str) -> Rejection:
    message = f"{what} is not configured: pass secret= to the decorator or set {env}"
    log.error("SendPromptly: %s", message)
    return Rejection(500, {"error": message, "code": "missing_secret"})


def verify_repair(body: bytes, headers: Any, secret: Any) -> Union[Any, Rejection]:
    """The verified repair callback, or the answer naming why not."""
    secret = secret if secret is not None else os.environ.get("SENDPROMPTLY_SIGNING_SECRET", "")
    if not secret:
        return _no_secret("the repair callbacks' signing secret", "SENDPROMPTLY_SIGNING_SECRET")
    try:
        return _native.verify_repair_request(body, headers, secret)
    except SignatureVerificationError as err:
        log.warning("repair callback refused: %s", err)
        return Rejection(400, {"error": str(err), "code": err.code})


def repair_answer(recorded: bool, exc: Optional[BaseException]) -> Tuple[int, Dict[str, Any]]:
    """The answer to SendPromptly: 503 when the result was not recorded (it
    calls again), else 200 saying whether the effect is now applied."""
    if not recorded:
        return 503, {"error": "the result was not recorded; SendPromptly will call again"}
    body: Dict[str, Any] = {"repaired": exc is None}
    if exc is not None:
        body["error"] = describe(exc)[0]
    return 200, body


def run_repair(
    callback: Any, fulfil: Callable[[RepairCallbackEvent], Any], client: Optional[Sender], headers: Any = None
) -> Tuple[int, Dict[str, Any]]:
    """Runs ``fulfil`` for a verified callback and reports its result. With
    OpenTelemetry installed and the callback's ``headers`` given, both run in
    a span whose parent is the callback's ``traceparent``."""
    ref = EventRef.of(callback)
    with _otel.repair_span(headers, callback.reprocess_id):
        token = CURRENT.set(ref)
        exc: Optional[Exception] = None
        try:
            fulfil(callback.event)
        except Exception as err:  # noqa: BLE001 - reported as the failure
            exc = err
        finally:
            CURRENT.reset(token)
        return repair_answer(report(ref, exc, client=client), exc)


async def run_repair_async(
    callback: Any,
    fulfil: Callable[[RepairCallbackEvent], Union[Any, Awaitable[Any]]],
    client: Optional[Sender],
    headers: Any = None,
) -> Tuple[int, Dict[str, Any]]:
    """``run_repair`` for async handlers."""
    ref = EventRef.of(callback)
    with _otel.repair_span(headers, callback.reprocess_id):
        token = CURRENT.set(ref)
        exc: Optional[Exception] = None
        try:
            answer = fulfil(callback.event)
            if inspect.isawaitable(answer):
                await answer
        except Exception as err:  # noqa: BLE001 - reported as the failure
            exc = err
        finally:
            CURRENT.reset(token)
        return repair_answer(await report_async(ref, exc, client=client), exc)


def missing(framework: str, extra: str, err: ImportError) -> ImportError:
    """The ImportError of an integration whose framework is not installed."""
    return ImportError(
        f"sendpromptly.integrations.{extra} needs {framework}, which is not installed: "
        f"pip install 'sendpromptly[{extra}]' ({err})"
    )
