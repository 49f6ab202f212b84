"""Forward compatibility: this package reads a newer server's answers.

A real answer of the current server, as a newer server would send it (a
timeline entry of a kind this version does not know, by an actor of a new
sort; an event state, incident kind, incident state, resolution, reprocess
status and provider it does not know), is served on a loopback port; the
client reads it and hands the new values to the caller as sent.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, Tuple

import pytest

import sendpromptly
from conftest import RepairEndpoint, Server, unique, wait_for


def raw_get(server: Server, path: str) -> Dict[str, Any]:
    """The server's own answer, as JSON (not through the SDK)."""
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {server.api_key}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def as_newer_server(answer: Dict[str, Any]) -> Dict[str, Any]:
    """`answer` with values only a newer server would send."""
    answer["event"]["state"] = "archived"
    answer["event"]["provider"] = "paddle"
    incident = answer["incident"]
    incident["kind"] = "chargeback_lost"
    incident["state"] = "escalated"
    incident["resolution"] = "auto_closed"
    incident["event"]["provider"] = "paddle"
    incident["reprocess"]["status"] = "queued_for_review"
    answer["timeline"].append(
        {
            "at": "2026-11-22T10:00:05.000Z",
            "kind": "payout.reconciled",
            "actor": "batch:bat_1",
            "detail": {"payout": "po_1"},
        }
    )
    return answer


@pytest.fixture()
def newer_server() -> Iterator[Tuple[str, Dict[str, bytes]]]:
    """A loopback HTTP server answering each GET path with the body set for it."""
    bodies: Dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = bodies.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            body = body if body is not None else b'{"error":{"type":"not_found","message":"no"}}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", bodies
    finally:
        httpd.shutdown()
        thread.join(timeout=5)


def test_an_older_client_reads_a_newer_servers_event_and_incident(
    client: sendpromptly.Client,
    server: Server,
    repair_endpoint: RepairEndpoint,
    newer_server: Tuple[str, Dict[str, bytes]],
) -> None:
    # A real incident with a reprocess, from the current server.
    event_id = unique()
    client.receipt(provider="stripe", event_id=event_id, event_type="invoice.paid")
    client.failure(provider="stripe", event_id=event_id, error="boom")
    incident_id = client.get_event("stripe", event_id)["incident"]["id"]
    mode, repair_endpoint.mode = repair_endpoint.mode, "ignore"
    try:
        client.reprocess(incident_id, note="forward compatibility")
        wait_for(
            lambda: client.get_incident(incident_id)["incident"]["reprocess"]["status"] == "delivered",
            what="the callback delivered",
        )
    finally:
        repair_endpoint.mode = mode
    event_answer = as_newer_server(raw_get(server, f"/v1/events/stripe/{event_id}"))
    incident_answer = as_newer_server(raw_get(server, f"/v1/incidents/{incident_id}"))

    url, bodies = newer_server
    bodies[f"/v1/events/stripe/{event_id}"] = json.dumps(event_answer).encode()
    bodies[f"/v1/incidents/{incident_id}"] = json.dumps(incident_answer).encode()
    older = sendpromptly.Client(server.api_key, url)

    for detail in (older.get_event("stripe", event_id), older.get_incident(incident_id)):
        newest = detail["timeline"][-1]
        assert newest["kind"] == "payout.reconciled"
        assert newest["actor"] == "batch:bat_1"
        assert newest["detail"] == {"payout": "po_1"}
        assert detail["timeline"][0]["kind"] == "receipt.recorded"
        assert detail["event"]["state"] == "archived"
        assert detail["event"]["provider"] == "paddle"
        assert detail["incident"]["kind"] == "chargeback_lost"
        assert detail["incident"]["state"] == "escalated"
        assert detail["incident"]["resolution"] == "auto_closed"
        assert detail["incident"]["event"]["provider"] == "paddle"
        assert detail["incident"]["reprocess"]["status"] == "queued_for_review"
        assert detail["incident"]["reprocess"]["requested_by"].startswith("api_key:")
    # Everything else reads as the current server sent it.
    assert older.get_event("stripe", event_id)["event"]["event_id"] == event_id
