"""SendPromptly in one minute: see examples/demo/README.md. Run through
examples/demo/run.sh (which builds the server); exits 0 only when every step
happened as narrated."""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from credits_app import CreditsApp, SendPromptly, serve, stripe_sign  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "sendpromptly-core", "tests", "fixtures", "stripe")
DEADLINE_SECONDS = 5  # instead of the default 30 minutes
TTY = sys.stdout.isatty()


def bold(s: str) -> str:
    return f"\033[1m{s}\033[0m" if TTY else s


def say(s: str = "") -> None:
    print(s, flush=True)


def step(n: int, title: str) -> None:
    say()
    say(bold(f"{n}. {title}"))


class DemoFailed(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise DemoFailed(what)
    say(f"   ✓ {what}")


def wait_for(what: str, check: Callable[[], Any], timeout: float, show_progress: bool = False,
             expected: Optional[float] = None) -> Any:
    """Polls `check` until it returns something truthy; a progress bar if asked."""
    start = time.time()
    width = 30
    while True:
        value = check()
        elapsed = time.time() - start
        if show_progress:
            done = min(width, int(width * elapsed / max(expected or timeout, 0.1)))
            bar = "#" * done + "." * (width - done)
            end = "\n" if value else ("\r" if TTY else "")
            if TTY or value:
                print(f"   [{bar}] {elapsed:4.1f}s {what}", end=end, flush=True)
        if value:
            return value
        if elapsed > timeout:
            if show_progress and TTY:
                print()
            raise DemoFailed(f"timed out after {timeout:.0f}s waiting for: {what}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stripe_event(fixture: str, event_id: str, customer: str) -> bytes:
    """A realistic Stripe event (a recorded payload) with a fresh id and customer."""
    with open(os.path.join(FIXTURES, fixture)) as f:
        event = json.load(f)
    event = copy.deepcopy(event)
    event["id"] = event_id
    event["created"] = int(time.time())
    event["data"]["object"]["customer"] = customer
    return json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON


def deliver(app_url: str, payload: bytes, secret: str) -> Dict[str, Any]:
    """POSTs a webhook the way Stripe does: raw body, `Stripe-Signature`."""
    req = urllib.request.Request(app_url + "/webhooks/stripe", data=payload, method="POST")
    req.add_header("Content-Type", "application/json; charset=utf-8")
    req.add_header("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
    req.add_header("Stripe-Signature", stripe_sign(payload, secret))
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            raise DemoFailed(f"the webhook answered {resp.status}")
        return json.loads(resp.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin", required=True, help="the sendpromptly binary")
    parser.add_argument("--sabotage", choices=["dedupe"], help=argparse.SUPPRESS)  # scripts/test-demo.sh
    parser.add_argument("--keep", action="store_true", help="keep the server running at the end (Ctrl-C stops)")
    args = parser.parse_args()

    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="sendpromptly-demo-")
    procs: List[subprocess.Popen] = []
    try:
        return run(args, tmp, procs, t0)
    except DemoFailed as err:
        say()
        say(bold(f"DEMO FAILED: {err}"))
        log = os.path.join(tmp, "server.log")
        if os.path.exists(log):
            say("--- last lines of the server log ---")
            with open(log) as f:
                say("".join(f.readlines()[-30:]))
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: str, procs: List[subprocess.Popen], t0: float) -> int:
    port = free_port()
    sp_url = f"http://127.0.0.1:{port}"

    step(1, "Start SendPromptly on a fresh SQLite file")
    log = open(os.path.join(tmp, "server.log"), "w")
    server = subprocess.Popen(
        [args.bin, "--log-format", "text", "serve", "--listen", f"127.0.0.1:{port}",
         "--database-url", f"sqlite://{tmp}/sendpromptly.db", "--allow-private-urls",
         "--sweep-interval-ms", "100", "--callback-retry-delays", "1,2,5"],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "SENDPROMPTLY_LOG": "warn"})
    procs.append(server)
    printed: List[str] = []

    def read_banner() -> bool:
        line = server.stdout.readline() if server.stdout else ""
        if not line and server.poll() is not None:
            raise DemoFailed(f"sendpromptly serve exited with {server.returncode}")
        printed.append(line)
        return "is listening on" in line

    wait_for("the server to start", read_banner, timeout=60)
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # type: ignore
    banner = "".join(printed)

    def field(name: str) -> str:
        m = re.search(rf"{name}:\s+(\S+)", banner)
        if not m:
            raise DemoFailed(f"the first start did not print the {name}")
        return m.group(1)

    api_key, signing_secret = field("API key"), field("signing secret")
    login = re.search(r"console login:\s+(\S+) / (\S+)", banner)
    expect(login is not None and api_key.startswith("sp_") and signing_secret.startswith("whsec_"),
           f"`sendpromptly serve` is up on {sp_url}; it printed the API key, signing secret and console login once")
    sp = SendPromptly(sp_url, api_key)

    step(2, "Start the credits app (Stripe webhook handler, queue worker, repair endpoint)")
    stripe_secret = "whsec_" + secrets.token_hex(16)  # what the Stripe dashboard gives you
    app = CreditsApp(os.path.join(tmp, "credits.db"), sp, stripe_secret, signing_secret,
                     log=lambda s: say("   app: " + s))
    app.skip_dedupe = args.sabotage == "dedupe"  # proves the demo notices a double credit
    httpd = serve(app)
    app_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    status, _ = sp.call("PATCH", "/v1/project", {"repair_url": app_url + "/sendpromptly/repair",
                                                  "default_deadline_seconds": DEADLINE_SECONDS})
    expect(status == 200, f"the app listens on {app_url}; the project's repair URL points at its "
                          f"/sendpromptly/repair and the result deadline is {DEADLINE_SECONDS} s (default 30 min)")
    for customer in ("cus_alice", "cus_bob"):
        app.create_tenant(customer)
    say("   tenants: cus_alice and cus_bob have accounts; cus_carol is still signing up")

    def event(eid: str) -> Dict[str, Any]:
        status, body = sp.call("GET", f"/v1/events/stripe/{eid}")
        if status != 200:
            raise DemoFailed(f"GET /v1/events/stripe/{eid} answered {status}: {body}")
        return body

    def ev_state(body: Dict[str, Any]) -> Dict[str, Any]:
        return body.get("event", body)

    step(3, "Stripe sends invoice.paid for cus_alice: the happy path")
    e1 = "evt_demo_" + secrets.token_hex(6)
    payload1 = stripe_event("invoice_paid.json", e1, "cus_alice")
    deliver(app_url, payload1, stripe_secret)
    say("   app: signature verified, event committed to the inbox, receipt sent, 200 to Stripe")
    wait_for("the success result", lambda: ev_state(event(e1))["state"] == "succeeded", timeout=10)
    expect(app.balance("cus_alice") == 500, f"the worker added 500 credits to cus_alice and sent the result: {e1} succeeded")

    step(4, "Stripe delivers the same invoice.paid again (a duplicate delivery)")
    answer = deliver(app_url, payload1, stripe_secret)
    app.drain()
    ev1 = ev_state(event(e1))
    expect(answer.get("duplicate") is True and ev1["deliveries"] == 2,
           f"SendPromptly counted it: deliveries = {ev1['deliveries']}")
    expect(app.balance("cus_alice") == 500, "cus_alice still has 500 credits: not credited twice")

    step(5, "The queue worker goes down; Stripe sends checkout.session.completed for cus_bob")
    app.worker_up.clear()
    e2 = "evt_demo_" + secrets.token_hex(6)
    deliver(app_url, stripe_event("checkout_session_completed.json", e2, "cus_bob"), stripe_secret)
    app.drain()
    say("   app: receipt sent and 200 to Stripe — Stripe's dashboard shows this delivery as successful")
    say(f"   the worker lost the job, so no result will come; waiting for the {DEADLINE_SECONDS} s deadline:")

    def incident_of(eid: str, kind: str) -> Optional[Dict[str, Any]]:
        inc = event(eid).get("incident")
        if inc and inc.get("kind") == kind and inc.get("state") == "open":
            return inc
        return None

    inc2 = wait_for("deadline → missing_result incident", lambda: incident_of(e2, "missing_result"),
                    timeout=DEADLINE_SECONDS + 20, show_progress=True,
                    expected=DEADLINE_SECONDS + 0.5)
    expect(True, f"incident {inc2['id']} opened: kind missing_result, event {e2} overdue")
    expect(app.balance("cus_bob") == 0, "cus_bob has 0 credits: the payment was not applied")

    step(6, "Stripe sends invoice.paid for cus_carol, whose account does not exist yet")
    app.worker_up.set()
    e3 = "evt_demo_" + secrets.token_hex(6)
    deliver(app_url, stripe_event("invoice_paid.json", e3, "cus_carol"), stripe_secret)
    inc3 = wait_for("failure → failed_result incident", lambda: incident_of(e3, "failed_result"), timeout=10)
    expect(True, f"the worker failed (\"tenant for customer cus_carol not found\") and sent a failure result: "
                 f"incident {inc3['id']} opened at once, kind failed_result")

    step(7, "Open incidents")
    status, body = sp.call("GET", "/v1/incidents?state=open")
    open_ids = sorted(i["id"] for i in body["data"])
    for inc in body["data"]:
        say(f"   {inc['id']}  {inc['kind']:<15} {inc['event']['event_type']}  {inc['event'].get('subject')}")
    expect(open_ids == sorted([inc2["id"], inc3["id"]]), "exactly these two are open")

    step(8, "Fix the cause, then reprocess both through the API")
    app.create_tenant("cus_carol")
    say("   cus_carol finished signing up; the worker is back")
    for inc in (inc2, inc3):
        status, body = sp.call("POST", f"/v1/incidents/{inc['id']}/reprocess", {"note": "demo: cause fixed"})
        expect(status == 202, f"POST /v1/incidents/{inc['id']}/reprocess → 202, {body['reprocess_id']}")
    say("   SendPromptly POSTs a signed repair callback; the app verifies it, runs the same fulfil(),")
    say("   and reports success with the reprocess_id:")

    def resolved(inc_id: str) -> bool:
        status, body = sp.call("GET", f"/v1/incidents/{inc_id}")
        return (body.get("incident", body)).get("state") == "resolved"

    wait_for("both incidents resolved", lambda: resolved(inc2["id"]) and resolved(inc3["id"]),
             timeout=30, show_progress=True, expected=1)
    status, body = sp.call("GET", f"/v1/incidents/{inc3['id']}")
    inc = body.get("incident", body)
    expect(inc.get("resolution") == "success_result", f"both resolved, resolution success_result "
                                                      f"({app.repairs} verified repair callbacks)")
    expect(app.balance("cus_bob") == 500 and app.balance("cus_carol") == 500 and app.balance("cus_alice") == 500,
           "balances: cus_alice 500, cus_bob 500, cus_carol 500 — every payment applied exactly once")
    timeline = body.get("timeline", [])
    say("   timeline of " + inc3["id"] + ":")
    for entry in timeline:
        say(f"     {entry.get('at', '')}  {entry.get('kind', '')}")
    status, body = sp.call("GET", "/v1/incidents?state=open")
    expect(status == 200 and body["data"] == [], "no incident is open")

    step(9, "Share a proof link")
    status, link = sp.call("POST", f"/v1/incidents/{inc2['id']}/proof-links", {})
    expect(status == 201, "POST /v1/incidents/{id}/proof-links → 201")
    with urllib.request.urlopen(link["url"], timeout=5) as resp:
        expect(resp.status == 200, "the proof page answers 200, read-only, no login")

    say()
    say(bold(f"Done in {time.time() - t0:.0f} s."))
    say(f"   console:    {sp_url}/   login {login.group(1)} / {login.group(2)}")  # type: ignore[union-attr]
    say(f"   proof link: {link['url']}")
    say(f"   API key:    {api_key}")
    if args.keep:
        say("   The server keeps running (its data is in a temporary directory); Ctrl-C stops it.")
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    else:
        say("   (run with --keep to look around in the console before it stops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
