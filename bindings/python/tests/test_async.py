"""AsyncClient under asyncio: concurrent calls, errors, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

import sendpromptly
from conftest import Server, unique


def test_concurrent_receipts_and_results(async_client: sendpromptly.AsyncClient) -> None:
    async def main() -> None:
        ids = [unique() for _ in range(20)]
        receipts = await asyncio.gather(
            *(
                async_client.receipt(provider="stripe", event_id=i, event_type="invoice.paid", subject="cus_async")
                for i in ids
            )
        )
        assert all(r.created for r in receipts)
        assert {r.event["event_id"] for r in receipts} == set(ids)
        results = await asyncio.gather(
            *(async_client.success(provider="stripe", event_id=i) for i in ids[:10]),
            *(async_client.failure(provider="stripe", event_id=i, error="no tenant") for i in ids[10:]),
        )
        assert [r.event["state"] for r in results] == ["succeeded"] * 10 + ["failed"] * 10
        assert all(r.incident is not None for r in results[10:])
        detail, health = await asyncio.gather(async_client.get_event("stripe", ids[0]), async_client.health())
        assert detail["event"]["state"] == "succeeded" and health["status"] == "ok"
        page = await async_client.list_incidents(subject="cus_async", limit=5)
        assert len(page["data"]) == 5 and page["next_cursor"]

    asyncio.run(main())


def test_the_event_loop_keeps_running_while_calls_wait(server: Server) -> None:
    # Nothing listens on port 9: every attempt fails at once and the client
    # waits out its backoff; the loop must keep ticking meanwhile.
    slow = sendpromptly.AsyncClient(
        server.api_key,
        "http://127.0.0.1:9",
        retry=sendpromptly.RetryConfig(max_attempts=4, initial_backoff=0.2, jitter=0.0, total_budget=2.0),
    )

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        with pytest.raises(sendpromptly.APIConnectionError) as info:
            await slow.receipt(provider="stripe", event_id="evt_x", event_type="t")
        task.cancel()
        assert info.value.attempts == 4
        return ticks

    assert asyncio.run(main()) > 20


def test_api_errors_and_validation_errors_raise(async_client: sendpromptly.AsyncClient) -> None:
    async def main() -> None:
        with pytest.raises(sendpromptly.NotFoundError):
            await async_client.get_incident("inc_nope")
        # Field limits are checked before sending; nothing reaches the server.
        with pytest.raises(sendpromptly.ValidationError) as info:
            await async_client.receipt(provider="stripe", event_id="x" * 300, event_type="t")
        assert info.value.param == "event_id"
        # Wrong types fail at call time, before anything is awaited.
        with pytest.raises(ValueError):
            async_client.receipt(provider="paypal", event_id="x", event_type="t")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            async_client.receipt(provider="stripe", event_id="x")  # type: ignore[call-arg]

    asyncio.run(main())


def test_cancelling_a_call_cancels_it(server: Server) -> None:
    slow = sendpromptly.AsyncClient(
        server.api_key,
        "http://127.0.0.1:9",
        retry=sendpromptly.RetryConfig(max_attempts=50, initial_backoff=0.5, jitter=0.0, total_budget=30.0),
    )

    async def main() -> None:
        task = asyncio.ensure_future(slow.receipt(provider="stripe", event_id="evt_c", event_type="t"))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 1.0

    asyncio.run(main())


def test_awaiting_twice_is_an_error(async_client: sendpromptly.AsyncClient) -> None:
    async def main() -> None:
        pending = async_client.health()
        await pending
        with pytest.raises(RuntimeError):
            await pending

    asyncio.run(main())


def test_background_flush_async(async_client: sendpromptly.AsyncClient) -> None:
    async def main() -> None:
        background = async_client.background(sendpromptly.BackgroundConfig(capacity=100))
        event_id = unique()
        assert background.receipt(provider="custom", event_id=event_id, event_type="job.done")
        assert background.success(provider="custom", event_id=event_id)
        assert await background.flush_async(10)
        stats = await background.shutdown_async(5)
        assert stats.delivered == 2 and stats.dropped == 0
        detail = await async_client.get_event("custom", event_id)
        assert detail["event"]["state"] == "succeeded"

    asyncio.run(main())
