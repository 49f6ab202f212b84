"""sendpromptly.integrations.rq with a real RQ worker and Redis: success,
a job retried that succeeds on its 2nd attempt (no incident), one that
exhausts its retries (exactly one incident), and the server down."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator

import pytest

import sendpromptly
from conftest import down_url, unique, wait_for
from test_integrations import BUDGET, SLACK, stripe_event

rq = pytest.importorskip("rq")
from redis import Redis  # noqa: E402

from sendpromptly.integrations import rq as sp_rq  # noqa: E402

ATTEMPTS: Dict[str, int] = {}
SUCCEED_ON: Dict[str, int] = {}


class LedgerBusy(Exception):
    pass


def add_credits(event_id: str) -> str:
    attempt = ATTEMPTS[event_id] = ATTEMPTS.get(event_id, 0) + 1
    if attempt < SUCCEED_ON.get(event_id, 1):
        raise LedgerBusy(f"ledger busy (attempt {attempt})")
    return f"credited {event_id}"


@pytest.fixture()
def queue(redis_url: str) -> Iterator[Any]:
    connection = Redis.from_url(redis_url)
    yield rq.Queue(unique("sp-rq-"), connection=connection)
    sp_rq.instrument(None)


class Worker(rq.SimpleWorker):  # type: ignore[misc]
    """A real RQ worker in this process, without the command channel: its
    pubsub thread can take a minute to stop (redis-py), and nothing here
    sends worker commands."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def work(queue: Any) -> None:
    Worker([queue], connection=queue.connection).work(burst=True)


def received(client: sendpromptly.Client, succeed_on: int) -> Dict[str, Any]:
    event = json.loads(stripe_event(unique("cus_"))[0])
    client.receipt_for(event, effect="credits.add")
    SUCCEED_ON[event["id"]] = succeed_on
    return event


def test_rq_results_and_retries(queue: Any, client: sendpromptly.Client) -> None:
    sp_rq.instrument(client)
    once, twice, never = received(client, 1), received(client, 2), received(client, 99)
    for event in (once, twice, never):
        sp_rq.enqueue(queue, event, add_credits, event["id"], retry=rq.Retry(max=2))
    work(queue)

    assert client.get_event("stripe", once["id"])["event"]["state"] == "succeeded"
    detail = client.get_event("stripe", twice["id"])
    assert ATTEMPTS[twice["id"]] == 2
    assert detail["event"]["state"] == "succeeded" and detail["incident"] is None
    detail = client.get_event("stripe", never["id"])
    assert ATTEMPTS[never["id"]] == 3
    assert detail["event"]["state"] == "failed"
    assert "LedgerBusy: ledger busy (attempt 3)" in json.dumps(detail)
    assert len(client.list_incidents(subject=detail["event"]["subject"])["data"]) == 1


def test_rq_with_the_server_down(queue: Any) -> None:
    sp_rq.instrument(sendpromptly.Client("sp_test_down", down_url(), retry=sendpromptly.RetryConfig(total_budget=BUDGET)))
    event = json.loads(stripe_event("cus_down")[0])
    job = sp_rq.enqueue(queue, event, add_credits, event["id"])
    started = time.monotonic()
    work(queue)
    assert time.monotonic() - started < BUDGET + SLACK
    job.refresh()
    assert job.get_status() == "finished" and job.return_value() == f"credited {event['id']}"
