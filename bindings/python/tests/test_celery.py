"""sendpromptly.integrations.celery with a real Celery worker and a real Redis
broker: a Stripe event received by a Flask webhook view enqueues a task that
carries the event; the worker's success or final failure reaches the server.
A task retried that succeeds on its 2nd attempt opens no incident; one that
exhausts its retries opens exactly one. With the server down the tasks return
what they would have, within the time budget."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List

import pytest

import sendpromptly
from conftest import Server, down_url, unique, wait_for
from test_integrations import BUDGET, SLACK, STRIPE_SECRET, stripe_event

celery = pytest.importorskip("celery")
from celery.contrib.testing.worker import start_worker  # noqa: E402

from sendpromptly.integrations import celery as sp_celery  # noqa: E402

# Attempts seen per event id, and the attempt on which each event's task succeeds.
ATTEMPTS: Dict[str, int] = {}
SUCCEED_ON: Dict[str, int] = {}


class CreditsUnavailable(Exception):
    pass


@pytest.fixture(scope="module")
def app(redis_url: str) -> Iterator[Any]:
    app = celery.Celery("sendpromptly-test", broker=redis_url, backend=redis_url)
    app.conf.update(task_default_queue=unique("sp-test-"), broker_connection_retry_on_startup=True)

    @app.task(name="add_credits", bind=True, max_retries=2)
    def add_credits(self: Any, event_id: str) -> str:
        attempt = ATTEMPTS[event_id] = ATTEMPTS.get(event_id, 0) + 1
        if attempt < SUCCEED_ON.get(event_id, 1):
            raise self.retry(exc=CreditsUnavailable(f"ledger busy (attempt {attempt})"), countdown=0)
        return f"credited {event_id}"

    @app.task(name="never_retried")
    def never_retried(event_id: str) -> str:
        raise CreditsUnavailable("no account")

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield app
    sp_celery.uninstrument()


def flask_view(app: Any, client: Any) -> Any:
    """A Flask webhook view that only enqueues the task (the event travels by itself)."""
    from flask import Flask

    from sendpromptly.integrations.flask import stripe_webhook

    web = Flask("celery-test")

    @web.post("/webhooks/stripe")
    @stripe_webhook(STRIPE_SECRET, client=client, effect="credits.add")
    def webhook(event: Dict[str, Any]) -> Any:
        result = app.tasks["add_credits"].delay(event["id"])
        return {"task": result.id}

    return web


def deliver(web: Any, succeed_on: int) -> str:
    body, signature = stripe_event(unique("cus_"))
    event_id = json.loads(body)["id"]
    SUCCEED_ON[event_id] = succeed_on
    answer = web.test_client().post("/webhooks/stripe", data=body, headers={"Stripe-Signature": signature})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return event_id


def state(client: sendpromptly.Client, event_id: str) -> str:
    return str(client.get_event("stripe", event_id)["event"]["state"])


def test_worker_success_and_retries(app: Any, server: Server, client: sendpromptly.Client) -> None:
    sp_celery.instrument(client=client)
    web = flask_view(app, client)

    # Succeeds at once.
    first = deliver(web, succeed_on=1)
    wait_for(lambda: state(client, first) == "succeeded", what="the first task's success")

    # Fails once, retried, succeeds on its 2nd attempt: no incident.
    second = deliver(web, succeed_on=2)
    wait_for(lambda: state(client, second) == "succeeded", what="the retried task's success")
    assert ATTEMPTS[second] == 2
    assert client.get_event("stripe", second)["incident"] is None

    # Fails on every attempt (1 + max_retries = 3): failed once, one incident.
    third = deliver(web, succeed_on=99)
    wait_for(lambda: state(client, third) == "failed", what="the exhausted task's failure")
    assert ATTEMPTS[third] == 3
    detail = client.get_event("stripe", third)
    assert detail["incident"]["kind"] == "failed_result"
    assert "CreditsUnavailable: ledger busy (attempt 3)" in json.dumps(detail)
    subject = detail["event"]["subject"]
    incidents = client.list_incidents(subject=subject)
    assert len(incidents["data"]) == 1


def test_enqueue_carries_the_event_and_failure_without_retry(app: Any, client: sendpromptly.Client) -> None:
    sp_celery.instrument(client=client)
    body, _ = stripe_event(unique("cus_"))
    event = json.loads(body)
    client.receipt_for(event, effect="credits.add")
    result = sp_celery.enqueue(app.tasks["never_retried"], event, args=(event["id"],))
    with pytest.raises(CreditsUnavailable):
        result.get(timeout=30)
    wait_for(lambda: state(client, event["id"]) == "failed", what="the failure")

    # A task without the header is left alone.
    plain = app.tasks["add_credits"].delay("evt_untracked")
    assert plain.get(timeout=30) == "credited evt_untracked"


def test_worker_with_the_server_down_returns_within_the_budget(app: Any) -> None:
    down = sendpromptly.Client("sp_test_down", down_url(), retry=sendpromptly.RetryConfig(total_budget=BUDGET))
    sp_celery.instrument(client=down)
    results: List[Any] = []
    started = time.monotonic()
    for _ in range(2):
        body, _ = stripe_event(unique("cus_"))
        event = json.loads(body)
        results.append((event["id"], sp_celery.enqueue(app.tasks["add_credits"], event, args=(event["id"],))))
    for event_id, result in results:
        assert result.get(timeout=30) == f"credited {event_id}"
    # Each task's result signal waited at most the budget.
    assert time.monotonic() - started < 2 * BUDGET + SLACK
