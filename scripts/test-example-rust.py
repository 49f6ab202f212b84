#!/usr/bin/env python3
"""Runs the Rust example (sendpromptly-client/examples/axum_stripe_webhook.rs)
end to end against a real server (run by scripts/test-examples.sh): a
Stripe-signed invoice.paid → receipt and success; a duplicate delivery →
counted; a forged signature → 400, nothing recorded; an event without a
customer → failure → failed_result incident; a reprocess → the example's
repair endpoint verifies the callback, runs the same fulfilment, reports
success → resolved. Standard library only."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples", "demo"))
from credits_app import SendPromptly, stripe_sign  # noqa: E402


def fail(msg):
    print(f"test-example-rust: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, check, timeout=30):
    start = time.time()
    while time.time() - start < timeout:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    fail(f"timed out waiting for {what}")


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def main():
    server_bin, example_bin = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="sendpromptly-example-")
    procs = []
    try:
        port, app_port = free_port(), free_port()
        out = open(os.path.join(tmp, "serve.out"), "w+")
        procs.append(subprocess.Popen(
            [server_bin, "serve", "--listen", f"127.0.0.1:{port}", "--database-url", f"sqlite://{tmp}/sp.db",
             "--allow-private-urls", "--sweep-interval-ms", "100", "--callback-retry-delays", "1"],
            stdout=out, stderr=subprocess.STDOUT))

        def banner():
            out.seek(0)
            text = out.read()
            return text if "is listening on" in text else None
        text = wait("the server", banner)
        key = re.search(r"API key:\s+(\S+)", text).group(1)
        secret = re.search(r"signing secret:\s+(\S+)", text).group(1)
        sp = SendPromptly(f"http://127.0.0.1:{port}", key)
        stripe_secret = "whsec_rust_example_stripe"
        app_out = open(os.path.join(tmp, "app.out"), "w+")
        procs.append(subprocess.Popen([example_bin], stdout=app_out, stderr=subprocess.STDOUT, env=dict(
            os.environ, PORT=str(app_port), SENDPROMPTLY_API_KEY=key, SENDPROMPTLY_URL=sp.base_url,
            SENDPROMPTLY_SIGNING_SECRET=secret, STRIPE_WEBHOOK_SECRET=stripe_secret)))
        app_url = f"http://127.0.0.1:{app_port}"
        wait("the example to listen", lambda: socket.socket().connect_ex(("127.0.0.1", app_port)) == 0)
        status, _ = sp.call("PATCH", "/v1/project", {"repair_url": app_url + "/sendpromptly/repair"})
        if status != 200:
            fail(f"PATCH /v1/project answered {status}")

        def event(eid, customer):
            return json.dumps({"id": eid, "object": "event", "api_version": "2024-06-20",
                               "created": int(time.time()), "livemode": False, "type": "invoice.paid",
                               "data": {"object": {"id": "in_1", "object": "invoice", "customer": customer,
                                                   "amount_paid": 2000}}}, indent=2).encode()

        def deliver(payload, signature=None):
            return post(app_url + "/webhooks/stripe", payload, {
                "Content-Type": "application/json",
                "Stripe-Signature": signature or stripe_sign(payload, stripe_secret)})

        ok = event("evt_rust_ok", "cus_rust")
        if deliver(ok) != 200 or deliver(ok) != 200:
            fail("the example did not answer 200 to a signed invoice.paid")
        _, ev = sp.call("GET", "/v1/events/stripe/evt_rust_ok")
        if ev["event"]["state"] != "succeeded" or ev["event"]["deliveries"] != 2:
            fail(f"expected succeeded with 2 deliveries: {ev['event']}")
        if ev["event"]["subject"] != "cus_rust":
            fail(f"subject: {ev['event']}")

        forged = event("evt_rust_forged", "cus_rust")
        if deliver(forged, f"t={int(time.time())},v1={'0' * 64}") != 400:
            fail("a forged signature was not refused")
        if sp.call("GET", "/v1/events/stripe/evt_rust_forged")[0] != 404:
            fail("a forged event was recorded")

        if deliver(event("evt_rust_nocustomer", None)) != 200:
            fail("the example did not acknowledge an event whose effect failed")
        _, ev = sp.call("GET", "/v1/events/stripe/evt_rust_nocustomer")
        if not ev["incident"] or ev["incident"]["kind"] != "failed_result":
            fail(f"no failed_result incident: {ev}")

        # A receipt like the example's, for a customer, whose result never came (the worker died).
        sp.receipt(provider="stripe", event_id="evt_rust_lost", event_type="invoice.paid", subject="cus_rust",
                   effect="credits.add", metadata={"credits": 500})
        sp.result(provider="stripe", event_id="evt_rust_lost", status="failure", error="worker died")
        inc = sp.call("GET", "/v1/events/stripe/evt_rust_lost")[1]["incident"]
        status, rep = sp.call("POST", f"/v1/incidents/{inc['id']}/reprocess", {"note": "test"})
        if status != 202:
            fail(f"reprocess answered {status}: {rep}")
        detail = wait("the repair to resolve the incident", lambda: (
            lambda d: d if d["incident"]["state"] == "resolved" else None)(sp.call("GET", f"/v1/incidents/{inc['id']}")[1]))
        if detail["incident"]["resolution"] != "success_result":
            fail(f"resolution: {detail['incident']}")
        app_out.seek(0)
        if f"reprocessing stripe/evt_rust_lost ({rep['reprocess_id']})" not in app_out.read():
            fail("the example did not log the verified repair")
        print("test-example-rust: passed")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
