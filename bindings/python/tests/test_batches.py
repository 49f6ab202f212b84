"""Bulk reprocess (outage recovery) from Python against a real server: real
incidents, a real repair endpoint (the Flask fixture), plan, start, follow
and cancel a batch with `Client` and `AsyncClient`."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import List

import pytest

import sendpromptly
from conftest import RepairEndpoint, unique, wait_for


def open_incidents(client: sendpromptly.Client, event_type: str, count: int) -> List[str]:
    """`count` open failed-result incidents of a fresh event type."""
    ids = []
    for i in range(count):
        event_id = unique()
        client.receipt(provider="stripe", event_id=event_id, event_type=event_type, subject=f"cus_batch_{i}")
        failed = client.failure(provider="stripe", event_id=event_id, error="queue worker down")
        assert failed.incident is not None
        ids.append(failed.incident["id"])
    return ids


def called_back(endpoint: RepairEndpoint) -> List[str]:
    return [r["callback"].incident_id for r in endpoint.received if "callback" in r]


def test_plan_start_follow_a_batch_to_completion(
    client: sendpromptly.Client, repair_endpoint: RepairEndpoint
) -> None:
    event_type = "invoice.paid." + unique("py_batch_")
    before = datetime.now(timezone.utc) - timedelta(minutes=1)
    incidents = open_incidents(client, event_type, 3)
    until = datetime.now(timezone.utc) + timedelta(minutes=1)

    plan = client.plan_reprocess_batch(event_type=event_type, state="open", opened_after=before, opened_before=until)
    assert plan["dry_run"] is True
    assert (plan["total"], plan["to_send"], plan["skipped"]) == (3, 3, 0)
    assert plan["by_event_type"] == {event_type: 3}
    assert sorted(i["incident_id"] for i in plan["incidents"]) == sorted(incidents)
    assert all(i["state"] == "pending" for i in plan["incidents"])
    # A dry run sends nothing.
    assert not set(incidents) & set(called_back(repair_endpoint))
    assert all(client.get_incident(i)["incident"]["state"] == "open" for i in incidents)

    batch = client.start_reprocess_batch(
        event_type=event_type,
        state="open",
        opened_after=before.isoformat(),
        opened_before=until.timestamp(),
        rate_per_second=50,
        concurrency=2,
        note="after the queue outage",
    )
    assert batch["id"].startswith("rpb_")
    assert batch["rate_per_second"] == 50.0 and batch["concurrency"] == 2
    assert batch["note"] == "after the queue outage"
    assert batch["started_by"].startswith("api_key:")
    assert batch["counts"]["total"] == 3

    done = wait_for(
        lambda: (b := client.reprocess_batch(batch["id"]))["state"] == "completed" and b["counts"]["resolved"] == 3 and b,
        what="the batch to complete with every incident resolved",
    )
    # The endpoint reports success before it answers, so each incident is
    # resolved (its callback settled) before the 200 is recorded: resolved,
    # not delivered.
    assert done["counts"]["sent"] == 3 and done["counts"]["in_flight"] == 0
    assert done["counts"]["pending"] == 0 and done["counts"]["failed"] == 0
    assert sorted(i["incident_id"] for i in done["items"]) == sorted(incidents)
    assert all(i["state"] == "resolved" and i["reprocess_id"].startswith("rep_") for i in done["items"])
    assert sorted(set(called_back(repair_endpoint)) & set(incidents)) == sorted(incidents)
    detail = client.get_incident(incidents[0])
    assert detail["incident"]["state"] == "resolved"
    notes = [e["detail"].get("note") or "" for e in detail["timeline"] if e["kind"] == "reprocess.requested"]
    assert any(batch["id"] in n and "after the queue outage" in n for n in notes), notes

    # Run again, the plan skips them all now.
    again = client.plan_reprocess_batch(incident_ids=incidents + ["inc_doesnotexist"])
    assert again["to_send"] == 0
    assert again["skipped_by_reason"] == {"incident_resolved": 3, "incident_not_found": 1}


def test_cancel_stops_what_was_not_sent(client: sendpromptly.Client, repair_endpoint: RepairEndpoint) -> None:
    incidents = open_incidents(client, "invoice.paid." + unique("py_cancel_"), 4)
    # One callback per 100 s: the first goes at once, the others wait.
    batch = client.start_reprocess_batch(incident_ids=incidents, rate_per_second=0.01)
    cancelled = client.cancel_reprocess_batch(batch["id"])
    assert cancelled["state"] == "cancelled"
    counts = cancelled["counts"]
    assert counts["cancelled"] >= 3, counts
    assert counts["cancelled"] + counts["sent"] == 4, counts
    assert counts["pending"] == 0
    never = [i["incident_id"] for i in cancelled["items"] if i["state"] == "cancelled"]
    # Cancelling again changes nothing; the cancelled ones stay open.
    assert client.cancel_reprocess_batch(batch["id"])["counts"] == client.reprocess_batch(batch["id"])["counts"]
    assert client.reprocess_batch(batch["id"])["counts"]["cancelled"] == counts["cancelled"]
    assert all(client.get_incident(i)["incident"]["state"] == "open" for i in never)
    assert not set(never) & set(called_back(repair_endpoint))


def test_bad_batch_requests_are_typed_errors(client: sendpromptly.Client, repair_endpoint: RepairEndpoint) -> None:
    with pytest.raises(sendpromptly.InvalidRequestError) as info:
        client.plan_reprocess_batch(incident_ids=["inc_x"], event_type="invoice.paid")
    assert info.value.status == 422 and info.value.param == "incident_ids"
    with pytest.raises(sendpromptly.InvalidRequestError) as info:
        client.start_reprocess_batch(event_type="invoice.paid", rate_per_second=5000)
    assert info.value.param == "rate_per_second"
    with pytest.raises(sendpromptly.InvalidRequestError) as info:
        client.plan_reprocess_batch(
            opened_after="2026-11-22T10:00:00Z", opened_before=datetime(2026, 11, 22, 9, tzinfo=timezone.utc)
        )
    assert info.value.param == "opened_before"
    with pytest.raises(sendpromptly.NotFoundError):
        client.reprocess_batch("rpb_doesnotexist")
    with pytest.raises(TypeError, match="rate_per_second"):
        client.start_reprocess_batch(event_type="x", rate_per_second="fast")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="concurrency"):
        client.start_reprocess_batch(event_type="x", concurrency=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state"):
        client.plan_reprocess_batch(state="broken")
    with pytest.raises(TypeError):
        client.plan_reprocess_batch("invoice.paid")  # type: ignore[call-arg, arg-type]


def test_async_client_runs_a_batch(
    client: sendpromptly.Client, async_client: sendpromptly.AsyncClient, repair_endpoint: RepairEndpoint
) -> None:
    incidents = open_incidents(client, "invoice.paid." + unique("py_async_"), 2)

    async def run() -> None:
        plan = await async_client.plan_reprocess_batch(incident_ids=incidents)
        assert plan["to_send"] == 2
        batch = await async_client.start_reprocess_batch(incident_ids=incidents, concurrency=1, note="async")
        while True:
            view = await async_client.reprocess_batch(batch["id"])
            if view["state"] == "completed" and view["counts"]["resolved"] == 2:
                break
            await asyncio.sleep(0.1)
        after = await async_client.cancel_reprocess_batch(batch["id"])
        assert after["state"] == "completed" and after["counts"]["cancelled"] == 0

    asyncio.run(asyncio.wait_for(run(), 30))
    assert all(client.get_incident(i)["incident"]["state"] == "resolved" for i in incidents)
