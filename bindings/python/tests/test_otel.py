"""OpenTelemetry propagation with the real ``opentelemetry-sdk`` (issue #25):
the client adds the current span's ``traceparent`` to receipts and results,
the server's timeline holds that trace, a real repair callback continues it,
and the repair helper's span is a child of the callback's span."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List

import pytest

import sendpromptly
from sendpromptly._integration import run_repair

from conftest import Server, free_port, unique, wait_for

otel_trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def tracer() -> Any:
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    otel_trace.set_tracer_provider(provider)
    return otel_trace.get_tracer("test_otel")


def timeline(server: Server, event_id: str) -> List[Dict[str, Any]]:
    request = urllib.request.Request(
        f"{server.url}/v1/events/stripe/{event_id}", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return list(json.load(answer)["timeline"])


def entry(entries: List[Dict[str, Any]], kind: str) -> Dict[str, Any]:
    found = [e for e in entries if e["kind"] == kind]
    assert found, f"no {kind} in {[e['kind'] for e in entries]}"
    return found[-1]


def test_without_a_current_span_no_trace_is_sent(client: sendpromptly.Client, server: Server) -> None:
    event_id = unique()
    client.receipt(provider="stripe", event_id=event_id, event_type="invoice.paid")
    assert "trace" not in entry(timeline(server, event_id), "receipt.recorded")["detail"]


def test_receipt_failure_and_repair_continue_one_trace(
    tracer: Any, client: sendpromptly.Client, server: Server
) -> None:
    received: List[Dict[str, Any]] = []
    repair_spans: List[Any] = []

    def fulfil(event: Any) -> None:
        repair_spans.append(otel_trace.get_current_span())

    class Repair(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            callback = sendpromptly.verify_repair_request(body, dict(self.headers), server.secret)
            received.append({"headers": dict(self.headers), "callback": callback})
            status, answer = run_repair(callback, fulfil, client, self.headers)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Repair)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    previous = client.project()
    previous_url = previous["repair_url"] if isinstance(previous, dict) else previous.repair_url
    client.update_project(repair_url=f"http://127.0.0.1:{httpd.server_address[1]}/repair")
    try:
        event_id = unique()
        with tracer.start_as_current_span("handle invoice.paid") as receipt_span:
            client.receipt(provider="stripe", event_id=event_id, event_type="invoice.paid")
            with tracer.start_as_current_span("apply credits") as failing_span:
                answer = client.failure(provider="stripe", event_id=event_id, error="ledger locked")
        trace_id = f"{receipt_span.get_span_context().trace_id:032x}"
        failing_span_id = f"{failing_span.get_span_context().span_id:016x}"

        entries = timeline(server, event_id)
        receipt_trace = entry(entries, "receipt.recorded")["detail"]["trace"]
        assert receipt_trace["trace_id"] == trace_id
        assert receipt_trace["span_id"] == f"{receipt_span.get_span_context().span_id:016x}"
        assert receipt_trace["sampled"] is True
        failure_trace = entry(entries, "result.failure")["detail"]["trace"]
        assert failure_trace["trace_id"] == trace_id
        assert failure_trace["span_id"] == failing_span_id

        incident = answer.incident["id"]
        client.reprocess(incident, note="ledger unlocked")
        wait_for(lambda: received, what="the repair callback")
        traceparent = received[0]["headers"].get("traceparent") or received[0]["headers"].get("Traceparent")
        version, sent_trace, callback_span, flags = traceparent.split("-")
        # The flags are kept as the failing span had them (sampled, and the
        # SDK's level-2 "random trace id" bit).
        expected_flags = f"{int(failing_span.get_span_context().trace_flags):02x}"
        assert (version, sent_trace, flags) == ("00", trace_id, expected_flags)
        assert callback_span != failing_span_id

        # The server's delivery span is a child of the failing signal's span.
        attempt = wait_for(
            lambda: [e for e in timeline(server, event_id) if e["kind"] == "callback.attempt"],
            what="the attempt on the timeline",
        )[0]
        assert attempt["detail"]["trace"]["span_id"] == callback_span
        assert attempt["detail"]["trace"]["parent_span_id"] == failing_span_id

        # The repair helper's span is a child of the callback's span, in the same trace.
        wait_for(lambda: repair_spans, what="the repair handler")
        repair = wait_for(lambda: {s.name: s for s in EXPORTER.get_finished_spans()}.get("sendpromptly.repair"), what="the repair span")
        assert f"{repair.context.trace_id:032x}" == trace_id
        assert f"{repair.parent.span_id:016x}" == callback_span
        assert repair.attributes["sendpromptly.reprocess_id"] == received[0]["callback"].reprocess_id

        # The repair's own result carries the repair span's context.
        success = wait_for(
            lambda: [e for e in timeline(server, event_id) if e["kind"] == "result.success"],
            what="the repair's result",
        )[0]
        assert success["detail"]["trace"]["trace_id"] == trace_id
        assert success["detail"]["trace"]["span_id"] == f"{repair.context.span_id:016x}"
    finally:
        client.update_project(repair_url=previous_url)
        httpd.shutdown()
        thread.join(timeout=5)
