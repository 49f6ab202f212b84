"""The demo's "credits" SaaS: a Stripe webhook handler instrumented with
SendPromptly's two signals, a queue worker, and the repair endpoint.

Python standard library only, so the demo runs on a fresh machine with
nothing but Rust and Python. The SDKs (`pip install ./bindings/python`,
`npm install ./bindings/node`, the Rust crate `sendpromptly-client`) wrap the
same three HTTP calls and the same two signature checks; the copy-from
examples using them are in examples/python, examples/node and
sendpromptly-client/examples.

The shape is the one every integration should have:

1. ``POST /webhooks/stripe`` verifies ``Stripe-Signature`` over the raw body,
   writes the event to a durable inbox (SQLite, one row per event id), sends
   the **receipt** right after that commit, enqueues the work and answers
   Stripe 200 at once;
2. the queue worker runs ``fulfil`` (idempotent: keyed by event id) and
   sends the **result**, success or failure;
3. ``POST /sendpromptly/repair`` verifies the Standard Webhooks signature of
   the repair callback, runs the same ``fulfil`` and sends the result linked
   to the ``reprocess_id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Optional, Tuple

STRIPE_TOLERANCE_SECONDS = 300
CALLBACK_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """A webhook or callback whose signature does not verify."""


def stripe_sign(payload: bytes, secret: str, timestamp: Optional[int] = None) -> str:
    """``Stripe-Signature`` exactly as Stripe computes it: ``t=…,v1=…`` with
    the lowercase hex HMAC-SHA256 of ``"{t}.{payload}"`` keyed with the
    secret's bytes (what ``stripe.WebhookSignature`` checks)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def stripe_verify(payload: bytes, header: Optional[str], secret: str) -> Dict[str, Any]:
    """Verifies a Stripe webhook like the official SDKs; returns the event."""
    if not header:
        raise SignatureError("missing Stripe-Signature")
    items = [part.split("=", 1) for part in header.split(",") if "=" in part]
    ts = next((v for k, v in items if k == "t"), None)
    sigs = [v for k, v in items if k == "v1"]
    if ts is None or not ts.isdigit() or not sigs:
        raise SignatureError("malformed Stripe-Signature")
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        raise SignatureError("no matching v1 signature")
    if int(ts) < time.time() - STRIPE_TOLERANCE_SECONDS:
        raise SignatureError("timestamp outside the tolerance")
    return json.loads(payload)


def repair_verify(payload: bytes, headers: Any, secret: str) -> Dict[str, Any]:
    """Verifies a repair callback (Standard Webhooks: base64 HMAC-SHA256 of
    ``"{webhook-id}.{webhook-timestamp}.{body}"`` keyed with the base64 part
    of the ``whsec_`` secret); returns the callback."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sig_header = headers.get("webhook-signature")
    if not msg_id or not ts or not sig_header or not ts.isdigit():
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if abs(time.time() - int(ts)) > CALLBACK_TOLERANCE_SECONDS:
        raise SignatureError("webhook-timestamp outside the tolerance")
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{msg_id}.{ts}.".encode() + payload
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    candidates = [s.split(",", 1)[1] for s in sig_header.split() if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("no matching webhook-signature")
    return json.loads(payload)


class SendPromptly:
    """The three calls the app makes (the SDKs add retries and a budget)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def call(self, method: str, path: str, body: Optional[dict] = None) -> Tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.api_key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, (json.loads(raw) if raw else None)

    def receipt(self, **body: Any) -> Tuple[int, Any]:
        return self.call("POST", "/v1/receipt", body)

    def result(self, **body: Any) -> Tuple[int, Any]:
        return self.call("POST", "/v1/result", body)


class CreditsApp:
    """The app's state: an inbox and balances in SQLite, a work queue."""

    def __init__(self, db_path: str, sp: SendPromptly, stripe_secret: str, signing_secret: str,
                 log: Callable[[str], None] = print) -> None:
        self.sp = sp
        self.stripe_secret = stripe_secret
        self.signing_secret = signing_secret
        self.log = log
        self.db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self.lock = threading.Lock()
        with self.lock:
            self.db.executescript(
                """
                PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
                CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, body TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS tenants (customer TEXT PRIMARY KEY, credits INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY);
                """
            )
        self.work: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.worker_up = threading.Event()
        self.worker_up.set()
        self.repairs = 0
        self.skip_dedupe = False  # only scripts/test-demo.sh turns this on, to break the demo
        threading.Thread(target=self._worker, daemon=True).start()

    # -- the business --------------------------------------------------------

    def create_tenant(self, customer: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR IGNORE INTO tenants VALUES (?, 0)", (customer,))

    def balance(self, customer: str) -> Optional[int]:
        with self.lock:
            row = self.db.execute("SELECT credits FROM tenants WHERE customer = ?", (customer,)).fetchone()
        return None if row is None else row[0]

    def fulfil(self, event_id: str, customer: Optional[str], credits: int) -> Optional[str]:
        """Adds the credits once per event id. Returns why it failed, or None.
        The webhook's worker and the repair endpoint both call this."""
        if self.skip_dedupe:
            with self.lock:
                self.db.execute("DELETE FROM applied")
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if self.db.execute("SELECT 1 FROM applied WHERE event_id = ?", (event_id,)).fetchone():
                    self.db.execute("COMMIT")
                    return None  # already applied: a retry or a repair adds nothing
                cur = self.db.execute(
                    "UPDATE tenants SET credits = credits + ? WHERE customer = ?", (credits, customer))
                if cur.rowcount == 0:
                    self.db.execute("ROLLBACK")
                    return f"tenant for customer {customer} not found"
                self.db.execute("INSERT INTO applied VALUES (?)", (event_id,))
                self.db.execute("COMMIT")
                return None
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    # -- 1. the Stripe webhook -------------------------------------------------

    def handle_stripe(self, body: bytes, signature: Optional[str]) -> Tuple[int, dict]:
        try:
            event = stripe_verify(body, signature, self.stripe_secret)
        except SignatureError as err:
            return 400, {"error": str(err)}
        obj = event["data"]["object"]
        if event["type"] not in ("invoice.paid", "checkout.session.completed"):
            return 200, {"ignored": event["type"]}
        # Durable acceptance: the event is committed to our inbox.
        with self.lock:
            new = self.db.execute(
                "INSERT OR IGNORE INTO inbox VALUES (?, ?)", (event["id"], body.decode())).rowcount == 1
        # The receipt right after the commit (a duplicate delivery too: it is counted).
        amount = obj.get("amount_paid") if event["type"] == "invoice.paid" else obj.get("amount_total")
        credits = int(amount or 0) // 100 * 25  # 25 credits per dollar
        status, _ = self.sp.receipt(
            provider="stripe", event_id=event["id"], event_type=event["type"],
            subject=obj.get("customer"), effect="credits.add", metadata={"credits": credits})
        if status >= 300:
            self.log(f"receipt not recorded ({status}); the webhook still succeeds")
        if new or self.skip_dedupe:
            self.work.put({"event_id": event["id"], "customer": obj.get("customer"), "credits": credits})
        return 200, {"received": True, "duplicate": not new}

    # -- 2. the queue worker -----------------------------------------------------

    def _worker(self) -> None:
        while True:
            job = self.work.get()
            if not self.worker_up.is_set():
                continue  # the worker is down: this job is lost, no result will come
            failure = self.fulfil(job["event_id"], job["customer"], job["credits"])
            if failure is None:
                self.sp.result(provider="stripe", event_id=job["event_id"], status="success")
            else:
                self.sp.result(provider="stripe", event_id=job["event_id"], status="failure", error=failure)

    def drain(self, timeout: float = 10) -> None:
        """Waits until the worker took every queued job (for the narration)."""
        deadline = time.time() + timeout
        while not self.work.empty() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)

    # -- 3. the repair endpoint ----------------------------------------------------

    def handle_repair(self, body: bytes, headers: Any) -> Tuple[int, dict]:
        try:
            callback = repair_verify(body, headers, self.signing_secret)
        except SignatureError as err:
            return 400, {"error": str(err)}
        event = callback["event"]
        credits = int((event.get("metadata") or {}).get("credits", 0))
        failure = self.fulfil(event["event_id"], event.get("subject"), credits)
        self.repairs += 1
        fields: Dict[str, Any] = {"provider": event["provider"], "event_id": event["event_id"],
                                  "reprocess_id": callback["reprocess_id"]}
        if failure is None:
            status, _ = self.sp.result(status="success", **fields)
        else:
            status, _ = self.sp.result(status="failure", error=failure, **fields)
        if status >= 300:
            return 503, {"error": "result not recorded; deliver the callback again"}
        return 200, {"repaired": failure is None}


def serve(app: CreditsApp, port: int = 0) -> ThreadingHTTPServer:
    """Starts the app's HTTP server on 127.0.0.1 in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/webhooks/stripe":
                status, answer = app.handle_stripe(body, self.headers.get("Stripe-Signature"))
            elif self.path == "/sendpromptly/repair":
                status, answer = app.handle_repair(body, self.headers)
            else:
                status, answer = 404, {"error": "not found"}
            raw = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
