"""RQ: the result of a job that applies a provider event's effect.

    from rq import Queue, Retry
    from sendpromptly.integrations.rq import enqueue, instrument

    instrument(client=sp)                  # in the web process and the worker
    enqueue(queue, event, add_credits, event["id"], retry=Retry(max=3))

The event reference travels in the job's ``meta`` (``sendpromptly``) and the
job gets SendPromptly's ``on_success``/``on_failure`` callbacks: ``success``
when it returns, ``failure`` with the exception's type and message when it
fails with no retry left (an attempt RQ will retry is not a failure).
``event=None`` uses the event of the webhook helper's view that enqueues.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

try:
    from rq import Callback  # type: ignore[import-untyped]
except ImportError as _err:  # pragma: no cover - depends on the environment
    from .._integration import missing

    raise missing("RQ", "rq", _err) from _err

from .._integration import CURRENT, EventRef, Sender, report

__all__ = ["META", "enqueue", "instrument", "on_success", "on_failure"]

#: The job ``meta`` key holding the event reference.
META = "sendpromptly"

log = logging.getLogger("sendpromptly")

_client: Optional[Sender] = None


def instrument(client: Optional[Sender] = None) -> None:
    """Sets the client the job callbacks send results with (default:
    :func:`sendpromptly.configure`'s, else the environment's)."""
    global _client
    _client = client


def enqueue(queue: Any, event: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
    """``queue.enqueue(func, *args, **kwargs)`` for the job that applies
    ``event`` (a verified Stripe event, ``ShopifyDelivery``,
    ``RepairCallback`` or ``EventRef``; ``None``: the event being handled),
    with its reference in the job's ``meta`` and the result callbacks."""
    ref = EventRef.of(event) if event is not None else CURRENT.get()
    if ref is None:
        log.warning("SendPromptly: %s enqueued without an event: no result will be sent", getattr(func, "__name__", func))
        return queue.enqueue(func, *args, **kwargs)
    meta = dict(kwargs.pop("meta", None) or {})
    meta[META] = ref.to_dict()
    return queue.enqueue(
        func, *args, meta=meta, on_success=Callback(on_success), on_failure=Callback(on_failure), **kwargs
    )


def _ref(job: Any) -> Optional[EventRef]:
    return EventRef.from_dict((getattr(job, "meta", None) or {}).get(META))


def on_success(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    """RQ success callback: reports ``success``."""
    ref = _ref(job)
    if ref is not None:
        report(ref, None, client=_client, metadata={"rq_job": job.func_name})


def on_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """RQ failure callback: reports ``failure`` once no retry is left."""
    ref = _ref(job)
    if ref is None:
        return
    if (job.retries_left or 0) > 0:
        log.info("SendPromptly: %s for %s will be retried; no result yet", job.func_name, ref)
        return
    failure = exc_value if isinstance(exc_value, BaseException) else RuntimeError(str(exc_value))
    report(ref, failure, client=_client, metadata={"rq_job": job.func_name})
