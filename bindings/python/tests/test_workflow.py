"""The whole seed workflow driven from Python against a real server."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

import sendpromptly
from conftest import RepairEndpoint, Server, unique, wait_for


def test_receipt_duplicate_and_success(client: sendpromptly.Client) -> None:
    event_id = unique()
    first = client.receipt(
        provider="stripe",
        event_id=event_id,
        event_type="invoice.paid",
        subject="cus_py_1",
        effect="credits.add",
        deadline_seconds=900,
        metadata={"credits": 500, "nested": {"ok": True, "list": [1, 2.5, None]}},
        occurred_at=datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc),
    )
    assert isinstance(first, sendpromptly.SignalResponse)
    assert first.created and first.status == 201
    assert first.event["event_id"] == event_id
    assert first.event["state"] == "awaiting_result"
    assert first.event["metadata"] == {"credits": 500, "nested": {"ok": True, "list": [1, 2.5, None]}}
    assert first.event["occurred_at"].startswith("2026-11-22T10:00:00")
    assert first.incident is None
    assert first.idempotency_key and first.idempotency_key.startswith("sp_idem_")
    assert first.request_id

    again = client.receipt(provider="stripe", event_id=event_id, event_type="invoice.paid")
    assert not again.created and again.status == 200
    assert again.event["deliveries"] == 2
    assert again.idempotency_key != first.idempotency_key

    done = client.success(provider="stripe", event_id=event_id)
    assert done.event["state"] == "succeeded"

    detail = client.get_event("stripe", event_id)
    kinds = [entry["kind"] for entry in detail["timeline"]]
    assert len(kinds) >= 3, kinds
    found = client.search_events(subject="cus_py_1")
    assert any(e["event_id"] == event_id for e in found["data"])


def test_same_idempotency_key_is_replayed(client: sendpromptly.Client) -> None:
    event_id = unique()
    key = sendpromptly.new_idempotency_key()
    first = client.receipt(provider="custom", event_id=event_id, event_type="job.done", idempotency_key=key)
    replay = client.receipt(provider="custom", event_id=event_id, event_type="job.done", idempotency_key=key)
    assert not first.replayed
    assert replay.replayed
    assert replay.event["deliveries"] == 1
    with pytest.raises(sendpromptly.InvalidRequestError) as info:
        client.receipt(provider="custom", event_id=event_id, event_type="other.type", idempotency_key=key)
    assert info.value.status == 422
    assert info.value.type == "idempotency_key_reused"


def test_failure_reprocess_repair_endpoint_resolves(
    client: sendpromptly.Client, repair_endpoint: RepairEndpoint, server: Server
) -> None:
    event_id = unique()
    client.receipt(
        provider="stripe",
        event_id=event_id,
        event_type="invoice.paid",
        subject="cus_py_repair",
        effect="credits.add",
        metadata={"credits": 500},
    )
    failed = client.failure(provider="stripe", event_id=event_id, error="tenant acct_42 not found")
    incident = failed.incident
    assert incident is not None
    assert incident["kind"] == "failed_result" and incident["state"] == "open"

    listed = client.list_incidents(state="open", subject="cus_py_repair", provider="stripe")
    assert [i["id"] for i in listed["data"]] == [incident["id"]]

    asked = client.reprocess(incident["id"], note="fixed the tenant mapping")
    assert asked["reprocess_id"].startswith("rep_")
    assert asked["incident"]["state"] == "reprocessing"

    record = wait_for(
        lambda: next(
            (r for r in repair_endpoint.received if "callback" in r and r["callback"].reprocess_id == asked["reprocess_id"]),
            None,
        ),
        what="the repair callback",
    )
    callback = record["callback"]
    assert isinstance(callback, sendpromptly.RepairCallback)
    assert callback.type == "reprocess.requested"
    assert callback.incident_id == incident["id"]
    assert callback.event.event_id == event_id
    assert callback.event.metadata == {"credits": 500}
    assert record["standardwebhooks"]["reprocess_id"] == asked["reprocess_id"]

    def resolved() -> bool:
        return client.get_incident(incident["id"])["incident"]["state"] == "resolved"

    wait_for(resolved, what="the incident to be resolved by the success result")
    detail = client.get_incident(incident["id"])
    assert detail["incident"]["resolution"] == "success_result"
    assert detail["event"]["state"] == "succeeded"
    assert detail["event"]["last_result"]["reprocess_id"] == asked["reprocess_id"]

    link = client.create_proof_link(incident["id"], expires_in=3600)
    assert link["id"].startswith("prf_")
    token_path = link["url"].split("://", 1)[1].split("/", 1)[1]
    with urllib.request.urlopen(f"{server.url}/{token_path}", timeout=5) as page:
        assert page.status == 200
    links = client.list_proof_links(incident["id"])
    assert [l["id"] for l in links] == [link["id"]]
    assert client.revoke_proof_link(link["id"]) is None
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(f"{server.url}/{token_path}", timeout=5)
    assert gone.value.code == 404


def test_missing_result_goes_overdue_and_is_resolved_by_hand(client: sendpromptly.Client) -> None:
    event_id = unique()
    client.receipt(provider="shopify", event_id=event_id, event_type="orders/paid", deadline_seconds=1)

    def incident() -> object:
        return client.get_event("shopify", event_id)["incident"]

    opened = wait_for(incident, what="the overdue incident")
    assert opened["kind"] == "missing_result"
    assert client.get_event("shopify", event_id)["event"]["state"] == "overdue"
    with pytest.raises(sendpromptly.ValidationError):
        client.resolve(opened["id"], note="  ")
    done = client.resolve(opened["id"], note="credited by hand")
    assert done["incident"]["state"] == "resolved"
    assert done["incident"]["resolution"] == "manual"


def test_api_errors_carry_status_type_and_request_id(client: sendpromptly.Client, server: Server) -> None:
    with pytest.raises(sendpromptly.NotFoundError) as info:
        client.get_incident("inc_does_not_exist")
    err = info.value
    assert isinstance(err, sendpromptly.APIError) and isinstance(err, sendpromptly.SendPromptlyError)
    assert err.status == 404 and err.type == "not_found"
    assert err.request_id and err.message
    assert err.attempts == 1

    bad = sendpromptly.Client("sp_live_wrong", server.url)
    with pytest.raises(sendpromptly.AuthenticationError) as auth:
        bad.project()
    assert auth.value.status == 401

    with pytest.raises(sendpromptly.InvalidRequestError) as invalid:
        client.update_project(default_deadline_seconds=0)
    assert invalid.value.status == 422
    assert invalid.value.param == "default_deadline_seconds"


def test_project_settings_and_health(client: sendpromptly.Client) -> None:
    project = client.project()
    assert project["id"].startswith("prj_")
    changed = client.update_project(deadlines_by_event_type={"invoice.paid": 600})
    assert changed["deadlines_by_event_type"] == {"invoice.paid": 600}
    assert client.health()["status"] == "ok"
    with pytest.raises(TypeError):
        client.update_project(no_such_setting=1)


def test_rotation_old_and_new_secret_verify(
    client: sendpromptly.Client, repair_endpoint: RepairEndpoint, server: Server
) -> None:
    rotated = client.rotate_signing_secret()
    new_secret = rotated["secret"]
    assert new_secret.startswith("whsec_") and new_secret != server.secret
    repair_endpoint.secrets = [new_secret]
    try:
        event_id = unique()
        client.receipt(provider="stripe", event_id=event_id, event_type="invoice.paid")
        incident = client.failure(provider="stripe", event_id=event_id, error="boom").incident
        assert incident is not None
        asked = client.reprocess(incident["id"])
        record = wait_for(
            lambda: next(
                (r for r in repair_endpoint.received if "callback" in r and r["callback"].reprocess_id == asked["reprocess_id"]),
                None,
            ),
            what="the callback signed with both secrets",
        )
        signatures = record["headers"].get("Webhook-Signature", "").split(" ")
        assert len(signatures) == 2
        # The old secret still verifies on its own during the rotation.
        body, headers = record["body"], record["headers"]
        assert sendpromptly.verify_repair_request(body, headers, server.secret).reprocess_id == asked["reprocess_id"]
        assert sendpromptly.verify_repair_request(body, headers, [server.secret, new_secret]).incident_id == incident["id"]
    finally:
        repair_endpoint.secrets = [server.secret]
