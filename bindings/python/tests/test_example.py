"""examples/python/app.py end to end: a Stripe webhook signed by the
official package, credits, both signals, an incident, and its repair through
the example's own repair endpoint."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import stripe

import sendpromptly
from conftest import ROOT, RepairEndpoint, Server, free_port, unique, wait_for

STRIPE_SECRET = "whsec_example_app"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("example_app", ROOT / "examples" / "python" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def example(server: Server, repair_endpoint: RepairEndpoint) -> Iterator[Any]:
    from werkzeug.serving import make_server

    module = load_example()
    sp = sendpromptly.Client(server.api_key, server.url)
    app = module.create_app(sp=sp, stripe_secret=STRIPE_SECRET, signing_secret=server.secret)
    port = free_port()
    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    sp.update_project(repair_url=f"http://127.0.0.1:{port}/sendpromptly/repair")
    try:
        yield app
    finally:
        sp.update_project(repair_url=repair_endpoint.url)
        httpd.shutdown()
        thread.join(timeout=5)


def invoice_paid(customer: str, amount: int) -> str:
    return json.dumps(
        {
            "id": unique("evt_"),
            "object": "event",
            "type": "invoice.paid",
            "created": 1_790_000_000,
            "livemode": False,
            "data": {"object": {"id": "in_1", "object": "invoice", "customer": customer, "amount_paid": amount, "currency": "usd"}},
        }
    )


def post(app: Any, payload: str, signature: str) -> Any:
    return app.test_client().post(
        "/webhooks/stripe", data=payload, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


def test_example_app_credits_and_repair(example: Any, client: sendpromptly.Client) -> None:
    credits = example.config["credits"]

    payload = invoice_paid("cus_ok", 500)
    assert post(example, payload, stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)).status_code == 200
    event_id = json.loads(payload)["id"]
    assert credits.balances["cus_ok"] == 500
    detail = client.get_event("stripe", event_id)
    assert detail["event"]["state"] == "succeeded"
    assert detail["event"]["subject"] == "cus_ok"

    # A tampered webhook is refused.
    assert post(example, payload.replace("500", "900"), stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)).status_code == 400

    # An unknown customer: failure, incident; fix the data, reprocess, repaired.
    credits.unknown_customers.add("cus_new")
    payload = invoice_paid("cus_new", 300)
    assert post(example, payload, stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)).status_code == 200
    event_id = json.loads(payload)["id"]
    incident = client.get_event("stripe", event_id)["incident"]
    assert incident["kind"] == "failed_result"
    credits.unknown_customers.discard("cus_new")
    client.reprocess(incident["id"], note="account created")
    wait_for(lambda: client.get_incident(incident["id"])["incident"]["state"] == "resolved", what="the repair")
    assert credits.balances["cus_new"] == 300
