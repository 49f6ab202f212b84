"""Celery: the result of a task that applies a provider event's effect.

    from sendpromptly.integrations.celery import instrument, enqueue

    instrument(client=sp)            # once, in the app and in the worker

    # In a webhook view of sendpromptly.integrations.*, a task enqueued while
    # the view runs carries the event by itself:
    add_credits.delay(event["id"])
    # Anywhere else, say which event it applies:
    enqueue(add_credits, event, args=(event["id"],))

The event reference travels in the task message's headers
(``sendpromptly``). The worker sends ``success`` when the task returns
(``task_success``) and ``failure`` with the exception's type and message when
it finally fails (``task_failure``); a task that will be retried
(``self.retry()``, ``autoretry_for``: ``task_retry``) has not failed yet, so
only the last of its attempts counts. Tasks without the header are left alone.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, Optional, Tuple

try:
    from celery import signals  # type: ignore[import-untyped]
    from celery.app.task import Task  # type: ignore[import-untyped]
except ImportError as _err:  # pragma: no cover - depends on the environment
    from .._integration import missing

    raise missing("Celery", "celery", _err) from _err

from .._integration import EventRef, Sender, CURRENT, report

__all__ = ["HEADER", "headers_for", "enqueue", "instrument", "uninstrument", "event_of"]

#: The message header holding the event reference.
HEADER = "sendpromptly"

log = logging.getLogger("sendpromptly")

_client: Optional[Sender] = None


def headers_for(target: Any) -> Dict[str, Any]:
    """The task headers for the event ``target`` (a verified Stripe event, a
    ``ShopifyDelivery``, a ``RepairCallback`` or an ``EventRef``); pass them
    as ``apply_async(..., headers=headers_for(event))``."""
    return {HEADER: EventRef.of(target).to_dict()}


def enqueue(
    task: Task,
    target: Any,
    args: Optional[Iterable[Any]] = None,
    kwargs: Optional[Dict[str, Any]] = None,
    **options: Any,
) -> Any:
    """``task.apply_async(args, kwargs, **options)`` with the event
    ``target``'s reference in the headers; returns the ``AsyncResult``."""
    headers = dict(options.pop("headers", None) or {})
    headers.update(headers_for(target))
    return task.apply_async(args=tuple(args or ()), kwargs=kwargs, headers=headers, **options)


def event_of(request: Any) -> Optional[EventRef]:
    """The event reference a task's ``request`` carries, or ``None``."""
    if request is None:
        return None
    value = getattr(request, HEADER, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(HEADER)
    return EventRef.from_dict(value)


def _publishing(headers: Optional[Dict[str, Any]] = None, **_: Any) -> None:
    if headers is None or HEADER in headers:
        return
    ref = CURRENT.get()
    if ref is not None:
        headers[HEADER] = ref.to_dict()


def _attempt(task: Any) -> Tuple[int, Optional[int]]:
    request = getattr(task, "request", None)
    return int(getattr(request, "retries", 0) or 0), getattr(task, "max_retries", None)


def _prerun(task: Any = None, **_: Any) -> None:
    ref = event_of(getattr(task, "request", None))
    if ref is not None:
        CURRENT.set(ref)  # a task's own enqueues carry it on


def _succeeded(sender: Any = None, **_: Any) -> None:
    ref = event_of(getattr(sender, "request", None))
    if ref is not None:
        retries, _max = _attempt(sender)
        report(ref, None, client=_client, metadata={"celery_task": sender.name, "attempts": retries + 1})


def _failed(sender: Any = None, exception: Optional[BaseException] = None, **_: Any) -> None:
    ref = event_of(getattr(sender, "request", None))
    if ref is None or exception is None:
        return
    retries, max_retries = _attempt(sender)
    # task_failure comes only when no retry follows (a retry raises Retry
    # and sends task_retry instead), so this attempt was the last.
    report(ref, exception, client=_client, metadata={"celery_task": sender.name, "attempts": retries + 1})


def _retrying(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    ref = event_of(request)
    if ref is not None:
        log.info("SendPromptly: %s for %s will be retried (%s); no result yet", getattr(sender, "name", "task"), ref, reason)


def _postrun(**_: Any) -> None:
    CURRENT.set(None)


_HANDLERS = (
    (signals.before_task_publish, _publishing),
    (signals.task_prerun, _prerun),
    (signals.task_success, _succeeded),
    (signals.task_failure, _failed),
    (signals.task_retry, _retrying),
    (signals.task_postrun, _postrun),
)


def instrument(client: Optional[Sender] = None) -> None:
    """Connects the Celery signals (publisher and worker side); results are
    sent with ``client`` (default: :func:`sendpromptly.configure`'s, else
    ``SENDPROMPTLY_API_KEY``/``SENDPROMPTLY_URL``). A ``Client`` waits at most
    its time budget after each task; ``client.background()`` never waits.
    Calling it again replaces the client."""
    global _client
    _client = client
    for signal, handler in _HANDLERS:
        signal.connect(handler, weak=False, dispatch_uid=f"sendpromptly.{handler.__name__}")


def uninstrument() -> None:
    """Disconnects what :func:`instrument` connected."""
    for signal, handler in _HANDLERS:
        signal.disconnect(handler, dispatch_uid=f"sendpromptly.{handler.__name__}")
