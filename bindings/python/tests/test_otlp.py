"""The server's own spans over OTLP/HTTP (``--otlp-endpoint``), received by
a collector this test starts: a small OTLP/HTTP receiver that decodes each
``ExportTraceServiceRequest`` with the ``opentelemetry-proto`` package."""

from __future__ import annotations

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List

import pytest

import sendpromptly

from conftest import free_port, start_server, unique, wait_for

trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
FAILING_SPAN = "b7ad6b7169203331"


class Collector:
    """Decoded spans as dicts: name, ids (hex), kind, attributes."""

    def __init__(self) -> None:
        self.spans: List[Dict[str, Any]] = []
        self.paths: List[str] = []
        self.content_types: List[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.paths.append(self.path)
                collector.content_types.append(self.headers.get("Content-Type", ""))
                request = trace_service.ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            attributes: Dict[str, Any] = {}
                            for kv in span.attributes:
                                kind = kv.value.WhichOneof("value")
                                attributes[kv.key] = getattr(kv.value, kind) if kind else None
                            collector.spans.append(
                                {
                                    "name": span.name,
                                    "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(),
                                    "parent_span_id": span.parent_span_id.hex(),
                                    "kind": span.kind,
                                    "start": span.start_time_unix_nano,
                                    "end": span.end_time_unix_nano,
                                    "status": span.status.code,
                                    "attributes": attributes,
                                    "service": resource.get("service.name"),
                                    "scope": scope_spans.scope.name,
                                }
                            )
                answer = trace_service.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def named(self, name: str) -> List[Dict[str, Any]]:
        return [s for s in self.spans if s["name"] == name]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join(timeout=5)


class RepairEndpoint:
    def __init__(self) -> None:
        self.received: List[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.received.append(self.headers.get("traceparent", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/repair"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join(timeout=5)


def test_the_collector_receives_request_and_repair_spans() -> None:
    collector = Collector()
    repair = RepairEndpoint()
    try:
        with start_server(["--otlp-endpoint", collector.url]) as server:
            client = sendpromptly.Client(server.api_key, server.url)
            client.update_project(repair_url=repair.url)
            event_id = unique()
            client.receipt(provider="stripe", event_id=event_id, event_type="invoice.paid")
            # A failure with a traceparent header, as an app without an SDK sends it.
            request = urllib.request.Request(
                f"{server.url}/v1/result",
                data=(
                    '{"provider": "stripe", "event_id": "%s", "status": "failure", "error": "ledger locked"}' % event_id
                ).encode(),
                headers={
                    "Authorization": f"Bearer {server.api_key}",
                    "Content-Type": "application/json",
                    "traceparent": f"00-{TRACE_ID}-{FAILING_SPAN}-01",
                },
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as http_answer:
                assert http_answer.status == 200
            incident_id = client.get_event("stripe", event_id)["incident"]["id"]
            client.reprocess(incident_id, note="ledger unlocked")
            wait_for(lambda: repair.received, what="the repair callback")
            sent = repair.received[0]
            assert sent.split("-")[1] == TRACE_ID

            # The HTTP request spans, named by their route template.
            receipts = wait_for(lambda: collector.named("POST /v1/receipt"), what="the receipt's span")
            assert receipts[0]["kind"] == 2  # SERVER
            assert receipts[0]["attributes"]["http.route"] == "/v1/receipt"
            assert receipts[0]["attributes"]["http.response.status_code"] == 201
            assert receipts[0]["service"] == "sendpromptly"
            assert receipts[0]["end"] >= receipts[0]["start"] > 0
            events = wait_for(
                lambda: collector.named("GET /v1/events/{provider}/{event_id}"), what="the event look-up's span"
            )
            assert events[0]["attributes"]["http.route"] == "/v1/events/{provider}/{event_id}"
            # The result's request span continues the caller's traceparent header.
            results = wait_for(lambda: collector.named("POST /v1/result"), what="the result's span")
            assert results[0]["trace_id"] == TRACE_ID
            assert results[0]["parent_span_id"] == FAILING_SPAN

            # The repair delivery: the continued trace, the span id sent in
            # traceparent, the failing signal's span as its parent.
            deliveries = wait_for(lambda: collector.named("repair callback"), what="the repair delivery's span")
            delivery = deliveries[0]
            assert delivery["kind"] == 3  # CLIENT
            assert delivery["trace_id"] == TRACE_ID
            assert delivery["span_id"] == sent.split("-")[2]
            assert delivery["parent_span_id"] == FAILING_SPAN
            assert delivery["attributes"]["http.response.status_code"] == 200
            assert delivery["attributes"]["sendpromptly.reprocess_id"].startswith("rep_")

            # Group commits are spans too.
            commits = wait_for(lambda: collector.named("group commit"), what="a group commit's span")
            assert commits[0]["attributes"]["sendpromptly.group.commands"] >= 1

            assert set(collector.paths) == {"/v1/traces"}
            assert set(collector.content_types) == {"application/x-protobuf"}
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as metrics:
                text = metrics.read().decode()
            assert "sendpromptly_otlp_spans_dropped_total 0" in text
    finally:
        collector.stop()
        repair.stop()


def test_a_collector_that_is_down_never_blocks_requests() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with start_server(["--otlp-endpoint", down]) as server:
        client = sendpromptly.Client(server.api_key, server.url)
        for _ in range(3):
            client.receipt(provider="stripe", event_id=unique(), event_type="invoice.paid")

        def dropped() -> float:
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as metrics:
                for line in metrics.read().decode().splitlines():
                    if line.startswith("sendpromptly_otlp_spans_dropped_total "):
                        return float(line.split()[1])
            return 0.0

        assert wait_for(lambda: dropped() >= 3, what="the spans counted as dropped")
