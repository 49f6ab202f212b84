"""sendpromptly.track and the Flask, FastAPI (Starlette) and Django webhook and
repair helpers, with the real frameworks against a real server: a Stripe
event signed by the official `stripe` package goes in, the effect succeeds or
raises, the server shows the event's state and incident, and a reprocess
reaches the framework's repair endpoint over real HTTP. With the server down,
every handler still answers what it would have, within the time budget."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import stripe

import sendpromptly
from conftest import RepairEndpoint, Server, down_url, free_port, signed_callback, unique, wait_for

STRIPE_SECRET = "whsec_integrations_test"
# The time budget of each signal in the server-down tests, and the slack
# allowed on top for the test's own work (not a benchmark).
BUDGET = 0.5
SLACK = 5.0


def stripe_event(customer: str, amount: int = 500, kind: str = "invoice.paid") -> Tuple[str, str]:
    """A Stripe event body and its `Stripe-Signature`, made by the official package."""
    payload = json.dumps(
        {
            "id": unique("evt_"),
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": {"id": "in_1", "object": "invoice", "customer": customer, "amount_paid": amount}},
        }
    )
    return payload, stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)


class Credits:
    def __init__(self) -> None:
        self.balances: Dict[str, int] = {}
        self.unknown: set = set()

    def add(self, customer: str, amount: int) -> None:
        if customer in self.unknown:
            raise LookupError(f"no account for customer {customer!r}")
        self.balances[customer] = self.balances.get(customer, 0) + amount


# --- sendpromptly.track ----------------------------------------------------


def received(client: sendpromptly.Client, event: Dict[str, Any]) -> None:
    client.receipt_for(event, effect="credits.add")


def test_track_decorator_reports_success_and_failure_and_reraises(client: sendpromptly.Client) -> None:
    ok = json.loads(stripe_event(unique("cus_"))[0])
    bad = json.loads(stripe_event(unique("cus_"))[0])
    received(client, ok)
    received(client, bad)
    boom = LookupError("no account for customer 'cus_x'")

    @sendpromptly.track(client=client)
    def apply(event: Dict[str, Any], fail: bool = False) -> str:
        if fail:
            raise boom
        return "applied"

    assert apply.__name__ == "apply"
    assert apply(ok) == "applied"
    with pytest.raises(LookupError) as info:
        apply(event=bad, fail=True)
    assert info.value is boom  # the app's own exception, unchanged

    assert client.get_event("stripe", ok["id"])["event"]["state"] == "succeeded"
    detail = client.get_event("stripe", bad["id"])
    assert detail["event"]["state"] == "failed"
    assert detail["incident"]["kind"] == "failed_result"
    assert "LookupError: no account for customer 'cus_x'" in json.dumps(detail)


def test_track_with_and_async_with_and_async_functions(client: sendpromptly.Client, async_client: sendpromptly.AsyncClient) -> None:
    ids = [json.loads(stripe_event(unique("cus_"))[0]) for _ in range(4)]
    for event in ids:
        received(client, event)

    with sendpromptly.track(ids[0], client=client) as ref:
        assert ref == sendpromptly.EventRef("stripe", ids[0]["id"])
        assert sendpromptly.current_event() == ref
    assert sendpromptly.current_event() is None

    with pytest.raises(ValueError):
        with sendpromptly.track(provider="stripe", event_id=ids[1]["id"], client=client):
            raise ValueError("bad amount")

    @sendpromptly.track(provider="stripe", arg="event_id", client=async_client)
    async def apply(event_id: str) -> int:
        await asyncio.sleep(0)
        return 7

    async def main() -> None:
        assert await apply(ids[2]["id"]) == 7
        with pytest.raises(KeyError):
            async with sendpromptly.track(ids[3], client=async_client):
                raise KeyError("cus_missing")

    asyncio.run(main())
    states = [client.get_event("stripe", e["id"])["event"]["state"] for e in ids]
    assert states == ["succeeded", "failed", "succeeded", "failed"]


def test_track_never_raises_its_own(caplog: pytest.LogCaptureFixture) -> None:
    down = sendpromptly.Client("sp_test_down", down_url(), retry=sendpromptly.RetryConfig(total_budget=BUDGET))
    event = json.loads(stripe_event("cus_down")[0])
    caplog.set_level(logging.WARNING, logger="sendpromptly")

    @sendpromptly.track(client=down)
    def apply(event: Dict[str, Any]) -> str:
        return "applied"

    assert apply(event) == "applied"
    with pytest.raises(RuntimeError, match="the app's own"):
        with sendpromptly.track(event, client=down):
            raise RuntimeError("the app's own")
    # Not an event at all: the code runs, nothing is sent, the reason is logged.
    with sendpromptly.track({"not": "an event"}, client=down):
        pass
    assert "not sent" in caplog.text
    assert "no result will be sent" in caplog.text


# --- The three frameworks --------------------------------------------------


class Framework:
    """One web framework's app with the Stripe webhook and the repair
    endpoint, its test client, and a real HTTP server for the repair."""

    name = ""

    def __init__(self, sp: Any, credits: Credits, signing_secret: str) -> None:
        self.sp, self.credits, self.signing_secret = sp, credits, signing_secret
        self.fulfilled: List[Any] = []
        self.seen: List[Any] = []

    # The app's code, the same in every framework.
    def on_event(self, event: Dict[str, Any]) -> Dict[str, Any]:
        self.seen.append(event)
        invoice = event["data"]["object"]
        try:
            with sendpromptly.track(event, client=self.sp):
                self.credits.add(invoice["customer"], invoice["amount_paid"])
        except LookupError:
            return {"received": True, "applied": False}  # recorded: SendPromptly opens an incident
        return {"received": True, "applied": True}

    def fulfil(self, event: sendpromptly.RepairCallbackEvent) -> None:
        self.fulfilled.append(event)
        self.credits.add(event.subject or "", int((event.metadata or {})["credits"]))

    def receipt_metadata(self, event: Dict[str, Any]) -> Dict[str, Any]:
        return {"credits": event["data"]["object"]["amount_paid"]}

    def post(self, path: str, body: str, headers: Dict[str, str]) -> Tuple[int, Any]:
        raise NotImplementedError

    def serve(self) -> "contextlib.AbstractContextManager[str]":
        raise NotImplementedError


class FlaskApp(Framework):
    name = "flask"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from flask import Flask

        from sendpromptly.integrations.flask import repair_endpoint, stripe_webhook

        self.app = app = Flask("integrations-test")

        @app.post("/webhooks/stripe")
        @stripe_webhook(STRIPE_SECRET, client=self.sp, event_types=["invoice.paid"], effect="credits.add",
                        metadata=self.receipt_metadata)
        def webhook(event: Dict[str, Any]) -> Any:
            return self.on_event(event)

        @app.post("/sendpromptly/repair")
        @repair_endpoint(self.signing_secret, client=self.sp)
        def repair(event: sendpromptly.RepairCallbackEvent) -> None:
            self.fulfil(event)

    def post(self, path: str, body: str, headers: Dict[str, str]) -> Tuple[int, Any]:
        answer = self.app.test_client().post(path, data=body, headers=headers)
        return answer.status_code, answer.get_json()

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        from werkzeug.serving import make_server

        port = free_port()
        httpd = make_server("127.0.0.1", port, self.app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            httpd.shutdown()
            thread.join(timeout=5)


class FastAPIApp(Framework):
    name = "fastapi"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from fastapi import FastAPI, Request

        from sendpromptly.integrations.fastapi import repair_endpoint, stripe_webhook

        self.app = app = FastAPI()

        @app.post("/webhooks/stripe")
        @stripe_webhook(STRIPE_SECRET, client=self.sp, event_types=["invoice.paid"], effect="credits.add",
                        metadata=self.receipt_metadata)
        async def webhook(request: Request, event: Dict[str, Any]) -> Any:
            assert request.url.path == "/webhooks/stripe"
            return self.on_event(event)

        @app.post("/sendpromptly/repair")
        @repair_endpoint(self.signing_secret, client=self.sp)
        async def repair(event: sendpromptly.RepairCallbackEvent) -> None:
            self.fulfil(event)

    def post(self, path: str, body: str, headers: Dict[str, str]) -> Tuple[int, Any]:
        from fastapi.testclient import TestClient

        answer = TestClient(self.app).post(path, content=body, headers=headers)
        return answer.status_code, answer.json()

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        import uvicorn

        port = free_port()
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda: server.started, what="uvicorn")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def django_ready() -> types.ModuleType:
    """Django configured once for the process, with a URLconf module whose
    `urlpatterns` each DjangoApp replaces."""
    from django.conf import settings

    name = "sendpromptly_test_urls"
    if not settings.configured:
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].urlpatterns = []  # type: ignore[attr-defined]
        settings.configure(
            DEBUG=False, SECRET_KEY="test-only", ROOT_URLCONF=name, ALLOWED_HOSTS=["*"], USE_TZ=True,
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        )
        import django

        django.setup()
    return sys.modules[name]


class DjangoApp(Framework):
    name = "django"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        urls = django_ready()
        from django.urls import clear_url_caches, path

        from sendpromptly.integrations.django import repair_endpoint, stripe_webhook

        @stripe_webhook(STRIPE_SECRET, client=self.sp, event_types=["invoice.paid"], effect="credits.add",
                        metadata=self.receipt_metadata)
        def webhook(request: Any, event: Dict[str, Any]) -> Any:
            assert request.method == "POST"
            return self.on_event(event)

        @repair_endpoint(self.signing_secret, client=self.sp)
        def repair(event: sendpromptly.RepairCallbackEvent) -> None:
            self.fulfil(event)

        urls.urlpatterns = [path("webhooks/stripe", webhook), path("sendpromptly/repair", repair)]  # type: ignore[attr-defined]
        clear_url_caches()

    def post(self, path: str, body: str, headers: Dict[str, str]) -> Tuple[int, Any]:
        from django.test import Client

        answer = Client().post(path, data=body, content_type="application/json", headers=headers)
        return answer.status_code, json.loads(answer.content)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        from django.core.handlers.wsgi import WSGIHandler
        from werkzeug.serving import make_server

        port = free_port()
        httpd = make_server("127.0.0.1", port, WSGIHandler(), threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            httpd.shutdown()
            thread.join(timeout=5)


FRAMEWORKS = [FlaskApp, FastAPIApp, DjangoApp]


@contextlib.contextmanager
def repair_url(client: sendpromptly.Client, url: str, restore: RepairEndpoint) -> Iterator[None]:
    client.update_project(repair_url=url)
    try:
        yield
    finally:
        client.update_project(repair_url=restore.url)


@pytest.mark.parametrize("kind", FRAMEWORKS, ids=lambda k: k.name)
def test_webhook_receipt_failure_incident_and_repair(
    kind: Callable[..., Framework], server: Server, client: sendpromptly.Client, repair_endpoint: RepairEndpoint
) -> None:
    credits = Credits()
    app = kind(client, credits, server.secret)

    # Verified, received, applied, succeeded.
    body, signature = stripe_event(unique("cus_ok_"), 500)
    status, answer = app.post("/webhooks/stripe", body, {"Stripe-Signature": signature})
    assert (status, answer) == (200, {"received": True, "applied": True})
    assert app.seen[-1] == json.loads(body)  # the view got the verified event
    detail = client.get_event("stripe", json.loads(body)["id"])
    assert detail["event"]["state"] == "succeeded"
    assert detail["event"]["subject"] == json.loads(body)["data"]["object"]["customer"]

    # A tampered body: 400 naming the cause, the view is not called, nothing recorded.
    seen = len(app.seen)
    status, answer = app.post("/webhooks/stripe", body.replace("500", "900"), {"Stripe-Signature": signature})
    assert status == 400 and answer["code"] == "no_matching_signature"
    assert len(app.seen) == seen

    # An event type the route does not handle: 200, no receipt.
    other, other_sig = stripe_event("cus_other", kind="customer.created")
    assert app.post("/webhooks/stripe", other, {"Stripe-Signature": other_sig}) == (200, {"ignored": "customer.created"})
    with pytest.raises(sendpromptly.NotFoundError):
        client.get_event("stripe", json.loads(other)["id"])

    # The effect raises: failure with the exception, an incident; the app answers as it chose.
    customer = unique("cus_new_")
    credits.unknown.add(customer)
    body, signature = stripe_event(customer, 300)
    assert app.post("/webhooks/stripe", body, {"Stripe-Signature": signature}) == (200, {"received": True, "applied": False})
    event_id = json.loads(body)["id"]
    detail = client.get_event("stripe", event_id)
    assert detail["event"]["state"] == "failed"
    incident = detail["incident"]
    assert incident["kind"] == "failed_result"
    assert "LookupError: no account for customer" in json.dumps(detail)

    # A forged repair callback is refused.
    forged = json.dumps({"type": "reprocess.requested"}).encode()
    status, answer = app.post("/sendpromptly/repair", forged.decode(), signed_callback("whsec_" + "A" * 32, forged, "msg_forged"))
    assert status == 400

    # Fix the data and reprocess: SendPromptly calls this framework's repair
    # endpoint over HTTP, the fulfilment function runs, the incident resolves.
    credits.unknown.discard(customer)
    with app.serve() as base, repair_url(client, f"{base}/sendpromptly/repair", repair_endpoint):
        client.reprocess(incident["id"], note="account created")
        wait_for(lambda: client.get_incident(incident["id"])["incident"]["state"] == "resolved", what="the repair")
    assert credits.balances[customer] == 300
    assert app.fulfilled[-1].event_id == event_id
    assert client.get_event("stripe", event_id)["event"]["state"] == "succeeded"


@pytest.mark.parametrize("kind", FRAMEWORKS, ids=lambda k: k.name)
@pytest.mark.parametrize("mode", ["client", "background"])
def test_handlers_answer_the_same_with_the_server_down(kind: Callable[..., Framework], mode: str) -> None:
    down = sendpromptly.Client("sp_test_down", down_url(), retry=sendpromptly.RetryConfig(total_budget=BUDGET))
    sp: Any = down if mode == "client" else down.background()
    credits = Credits()
    signing_secret = "whsec_" + "B" * 32
    app = kind(sp, credits, signing_secret)

    body, signature = stripe_event("cus_down", 500)
    started = time.monotonic()
    # Two signals (receipt, result), each within the budget.
    assert app.post("/webhooks/stripe", body, {"Stripe-Signature": signature}) == (200, {"received": True, "applied": True})
    assert time.monotonic() - started < 2 * BUDGET + SLACK
    assert credits.balances["cus_down"] == 500

    credits.unknown.add("cus_gone")
    body, signature = stripe_event("cus_gone", 500)
    assert app.post("/webhooks/stripe", body, {"Stripe-Signature": signature}) == (200, {"received": True, "applied": False})

    # The repair endpoint runs the fulfilment; the result is not recorded, so
    # with a blocking client it asks SendPromptly to call again (503).
    callback = json.dumps(
        {
            "type": "reprocess.requested", "reprocess_id": "rep_down", "incident_id": "inc_down", "attempt": 1,
            "requested_at": "2026-11-22T10:00:00Z", "requested_by": "api",
            "event": {"provider": "stripe", "event_id": "evt_down", "event_type": "invoice.paid",
                      "subject": "cus_down", "metadata": {"credits": 5}},
        }
    ).encode()
    started = time.monotonic()
    status, answer = app.post("/sendpromptly/repair", callback.decode(), signed_callback(signing_secret, callback, "rep_down"))
    assert time.monotonic() - started < BUDGET + SLACK
    assert app.fulfilled[-1].event_id == "evt_down" and credits.balances["cus_down"] == 505
    if mode == "client":
        assert status == 503
    else:
        assert (status, answer) == (200, {"repaired": True})
    if mode == "background":
        sp.shutdown(timeout=0)


def test_integrations_name_the_extra_when_the_framework_is_missing() -> None:
    import subprocess

    code = (
        "import sys; sys.modules['celery'] = None\n"
        "try:\n    import sendpromptly.integrations.celery\n"
        "except ImportError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'sendpromptly[celery]'" in out


def shopify_delivery(secret: str) -> Tuple[bytes, Dict[str, str]]:
    """A Shopify delivery signed as Shopify signs it (HMAC-SHA256 of the body, base64)."""
    import base64
    import hashlib
    import hmac

    body = json.dumps({"id": 820982911946154508, "total_price": "10.00", "customer": {"id": 115310627314723954}}).encode()
    return body, {
        "X-Shopify-Hmac-Sha256": base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode(),
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-API-Version": "2025-07",
        "X-Shopify-Shop-Domain": "example.myshopify.com",
        "X-Shopify-Webhook-Id": unique("wh-"),
        "X-Shopify-Event-Id": unique("shev-"),
        "X-Shopify-Triggered-At": "2026-11-22T10:00:00Z",
    }


def shopify_app(kind: str, sp: sendpromptly.Client, secret: str, seen: List[Any]) -> Callable[[bytes, Dict[str, str]], Tuple[int, Any]]:
    """A Shopify webhook route in `kind`; returns a function that posts to it."""

    def view(delivery: sendpromptly.ShopifyDelivery) -> Dict[str, Any]:
        seen.append(delivery)
        with sendpromptly.track(delivery, client=sp):
            pass
        return {"topic": delivery.topic}

    if kind == "flask":
        from flask import Flask

        from sendpromptly.integrations.flask import shopify_webhook

        flask_app = Flask("shopify-test")
        flask_app.post("/webhooks/shopify")(shopify_webhook(secret, client=sp, event_types=["orders/paid"])(view))
        return lambda body, headers: (lambda r: (r.status_code, r.get_json()))(
            flask_app.test_client().post("/webhooks/shopify", data=body, headers=headers)
        )
    if kind == "fastapi":
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from sendpromptly.integrations.fastapi import shopify_webhook

        api = FastAPI()
        api.post("/webhooks/shopify")(shopify_webhook(secret, client=sp, event_types=["orders/paid"])(lambda request, d: view(d)))
        return lambda body, headers: (lambda r: (r.status_code, r.json()))(
            TestClient(api).post("/webhooks/shopify", content=body, headers=headers)
        )
    urls = django_ready()
    from django.test import Client
    from django.urls import clear_url_caches, path

    from sendpromptly.integrations.django import shopify_webhook

    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("webhooks/shopify", shopify_webhook(secret, client=sp, event_types=["orders/paid"])(lambda request, d: view(d)))
    ]
    clear_url_caches()
    return lambda body, headers: (lambda r: (r.status_code, json.loads(r.content)))(
        Client().post("/webhooks/shopify", data=body, content_type="application/json", headers=headers)
    )


@pytest.mark.parametrize("kind", ["flask", "fastapi", "django"])
def test_shopify_webhook(kind: str, client: sendpromptly.Client) -> None:
    secret = "shpss_integrations_test"
    seen: List[Any] = []
    post = shopify_app(kind, client, secret, seen)
    body, headers = shopify_delivery(secret)
    assert post(body, headers) == (200, {"topic": "orders/paid"})
    delivery = seen[-1]
    assert isinstance(delivery, sendpromptly.ShopifyDelivery) and delivery.body["total_price"] == "10.00"
    provider, event_id, _ = sendpromptly.event_ref(delivery)
    assert client.get_event(provider, event_id)["event"]["state"] == "succeeded"

    # Signed with another secret: 400, the view is not called.
    body, headers = shopify_delivery("shpss_someone_else")
    status, answer = post(body, headers)
    assert status == 400 and answer["code"] == "invalid_hmac"
    assert len(seen) == 1


def test_a_missing_secret_is_a_500_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Flask

    from sendpromptly.integrations.flask import repair_endpoint, stripe_webhook

    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("SENDPROMPTLY_SIGNING_SECRET", raising=False)
    app = Flask("no-secret")
    app.post("/webhooks/stripe", endpoint="webhook")(stripe_webhook()(lambda event: {}))
    app.post("/sendpromptly/repair", endpoint="repair")(repair_endpoint()(lambda event: None))
    body, signature = stripe_event("cus_1")
    answer = app.test_client().post("/webhooks/stripe", data=body, headers={"Stripe-Signature": signature})
    assert answer.status_code == 500 and "STRIPE_WEBHOOK_SECRET" in answer.get_json()["error"]
    answer = app.test_client().post("/sendpromptly/repair", data=b"{}")
    assert answer.status_code == 500 and "SENDPROMPTLY_SIGNING_SECRET" in answer.get_json()["error"]
