"""SDK micro-benchmarks (Python): sendpromptly's native verifiers against the
official pure-Python `standardwebhooks` and `stripe` packages on the same
inputs (1 KiB and 16 KiB bodies), and, when SENDPROMPTLY_BENCH_URL and
SENDPROMPTLY_BENCH_API_KEY are set, the per-call cost of `Client.receipt`
against a plain `requests` POST of the same body to the same server.

Prints microseconds per call as min/median/max over REPEATS timeit rounds and
the ratio of medians. Run by bench/sdk.sh (which builds the package in release
mode); `BENCH_QUICK=1` shrinks everything to a smoke run.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import timeit
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List

import stripe
from standardwebhooks import Webhook

import sendpromptly

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPEATS = 3 if QUICK else 7
CALLBACK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STRIPE_SECRET = "whsec_bench_stripe_secret"


def measure(fn: Callable[[], Any], number: int) -> List[float]:
    """Microseconds per call for each of REPEATS rounds of `number` calls."""
    fn()  # warm up, and fail early if the inputs are wrong
    return [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=REPEATS)]


def report(name: str, ours: List[float], theirs: List[float], peer: str) -> None:
    def fmt(xs: List[float]) -> str:
        return f"min {min(xs):8.2f}  median {statistics.median(xs):8.2f}  max {max(xs):8.2f} us"

    ratio = statistics.median(theirs) / statistics.median(ours)
    print(f"{name}\n  sendpromptly: {fmt(ours)}\n  {peer:12}: {fmt(theirs)}\n  speed-up (median {peer} / median sendpromptly): {ratio:.2f}x")


def callback_body(size: int) -> bytes:
    doc: Dict[str, Any] = {
        "type": "reprocess.requested",
        "reprocess_id": "rep_01BENCH",
        "incident_id": "inc_01BENCH",
        "attempt": 1,
        "requested_at": "2026-11-22T10:00:00Z",
        "requested_by": "console:alice@example.com",
        "event": {
            "provider": "stripe",
            "event_id": "evt_1Q2w3E",
            "event_type": "invoice.paid",
            "subject": "cus_9s8d7f",
            "effect": "credits.add",
            "metadata": {"credits": 500, "pad": ""},
        },
    }
    base = len(json.dumps(doc))
    doc["event"]["metadata"]["pad"] = "x" * max(0, size - base)
    return json.dumps(doc).encode()


def stripe_payload(size: int) -> str:
    doc: Dict[str, Any] = {
        "id": "evt_1PyBench",
        "object": "event",
        "type": "invoice.paid",
        "created": 1_790_000_000,
        "livemode": False,
        "api_version": "2025-07-30.basil",
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_9s8d7f", "amount_paid": 500, "description": ""}},
    }
    base = len(json.dumps(doc))
    doc["data"]["object"]["description"] = "x" * max(0, size - base)
    return json.dumps(doc)


def verifiers() -> None:
    number = 200 if QUICK else 5000
    for size in (1024, 16384):
        body = callback_body(size)
        now = datetime.now(tz=timezone.utc)
        headers = {
            "webhook-id": "rep_01BENCH",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(CALLBACK_SECRET).sign("rep_01BENCH", now, body.decode()),
        }
        peer = Webhook(CALLBACK_SECRET)
        assert sendpromptly.verify_repair_request(body, headers, CALLBACK_SECRET).reprocess_id == "rep_01BENCH"
        report(
            f"Standard Webhooks verify, {len(body)} B body (verify + parse)",
            measure(lambda: sendpromptly.verify_repair_request(body, headers, CALLBACK_SECRET), number),
            measure(lambda: peer.verify(body, headers), number),
            "standardwebhooks",
        )

        payload = stripe_payload(size)
        header = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)
        report(
            f"Stripe verify, {len(payload)} B payload (verify + parse to an event)",
            measure(lambda: sendpromptly.stripe.verify(payload, header, STRIPE_SECRET), number),
            measure(lambda: stripe.Webhook.construct_event(payload, header, STRIPE_SECRET), number),
            "stripe",
        )
        report(
            f"Stripe verify, {len(payload)} B payload (signature only for stripe; ours also parses)",
            measure(lambda: sendpromptly.stripe.verify(payload, header, STRIPE_SECRET), number),
            measure(lambda: stripe.WebhookSignature.verify_header(payload, header, STRIPE_SECRET, 300), number),
            "stripe",
        )


def client_overhead(url: str, key: str) -> None:
    import requests

    number = 50 if QUICK else 1000
    client = sendpromptly.Client(api_key=key, base_url=url)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    run = uuid.uuid4().hex[:8]
    counter = [0]

    def ours() -> None:
        counter[0] += 1
        client.receipt(provider="stripe", event_id=f"evt_sdk_{run}_{counter[0]}", event_type="invoice.paid", subject="cus_bench")

    def plain() -> None:
        counter[0] += 1
        body = json.dumps({"provider": "stripe", "event_id": f"evt_req_{run}_{counter[0]}", "event_type": "invoice.paid", "subject": "cus_bench"})
        r = session.post(f"{url}/v1/receipt", data=body, headers=headers)
        assert r.status_code in (200, 201), r.text

    a = measure(ours, number)
    b = measure(plain, number)
    med = statistics.median
    report("Client.receipt vs requests.post, one durable receipt per call (sequential)", a, b, "requests")
    print(f"  Client.receipt overhead over requests: {med(a) - med(b):+.1f} us per call")


if __name__ == "__main__":
    start = time.monotonic()
    verifiers()
    url, key = os.environ.get("SENDPROMPTLY_BENCH_URL"), os.environ.get("SENDPROMPTLY_BENCH_API_KEY")
    if url and key:
        client_overhead(url, key)
    print(f"(sdk_python.py took {time.monotonic() - start:.1f} s)")
