"""Fixtures: a real `sendpromptly serve` on a loopback port, clients, and a
Flask repair endpoint served on another loopback port."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest

import sendpromptly

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_binary() -> Path:
    explicit = os.environ.get("SENDPROMPTLY_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    if not target.is_absolute():
        target = ROOT / target
    return target / "debug" / "sendpromptly"


@dataclass
class Server:
    url: str
    api_key: str
    secret: str
    process: "subprocess.Popen[bytes]"
    log: Path


@contextlib.contextmanager
def start_server(extra_args: Sequence[str] = ()) -> Iterator[Server]:
    """A real ``sendpromptly serve`` on a loopback port with a fresh SQLite
    file; ``extra_args`` are added to its command line."""
    binary = server_binary()
    if not binary.exists():
        pytest.fail(
            f"server binary {binary} not found: run `cargo build --bin sendpromptly` "
            "or set SENDPROMPTLY_BIN (scripts/test-python.sh does both)"
        )
    work = Path(tempfile.mkdtemp(prefix="sendpromptly-py-"))
    port = free_port()
    out = work / "serve.out"
    env = dict(os.environ)
    env.setdefault("SENDPROMPTLY_LOG", "warn")
    # Never pick up a developer's settings.
    for name in ("SENDPROMPTLY_API_KEY", "SENDPROMPTLY_URL", "SENDPROMPTLY_CONFIG", "SENDPROMPTLY_OTLP_ENDPOINT"):
        env.pop(name, None)
    with open(out, "wb") as stdout:
        process = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--database-url",
                f"sqlite://{work / 'sendpromptly.db'}",
                "--allow-private-urls",
                "--sweep-interval-ms",
                "200",
                "--callback-retry-delays",
                "1,1,1",
                *extra_args,
            ],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        api_key = secret = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = out.read_text(errors="replace")
            key_match = re.search(r"^\s*API key:\s*(sp_\S+)", text, re.M)
            secret_match = re.search(r"^\s*signing secret:\s*(whsec_\S+)", text, re.M)
            if key_match and secret_match and "listening on" in text:
                api_key, secret = key_match.group(1), secret_match.group(1)
                break
            if process.poll() is not None:
                break
            time.sleep(0.1)
        if not (api_key and secret):
            pytest.fail(f"sendpromptly serve did not start:\n{out.read_text(errors='replace')}")
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            assert answer.status == 200
        yield Server(url=url, api_key=api_key, secret=secret, process=process, log=out)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with start_server() as running:
        yield running


@pytest.fixture()
def client(server: Server) -> sendpromptly.Client:
    return sendpromptly.Client(server.api_key, server.url)


@pytest.fixture()
def async_client(server: Server) -> sendpromptly.AsyncClient:
    return sendpromptly.AsyncClient(server.api_key, server.url)


def unique(prefix: str = "evt_py_") -> str:
    return prefix + sendpromptly.new_idempotency_key()[len("sp_idem_") :]


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class RepairEndpoint:
    """A Flask app with the repair endpoint, served on loopback."""

    url: str
    received: List[Dict[str, Any]] = field(default_factory=list)
    secrets: List[str] = field(default_factory=list)
    # "success" (report success_for), "fail" (report failure_for) or "ignore".
    mode: str = "success"


@pytest.fixture(scope="session")
def repair_endpoint(server: Server) -> Iterator[RepairEndpoint]:
    from flask import Flask, request
    from standardwebhooks import Webhook
    from werkzeug.serving import make_server

    port = free_port()
    endpoint = RepairEndpoint(url=f"http://127.0.0.1:{port}/sendpromptly/repair", secrets=[server.secret])
    sp = sendpromptly.Client(server.api_key, server.url)
    app = Flask("repair-test")

    @app.post("/sendpromptly/repair")
    def repair() -> Any:
        body = request.get_data()
        record: Dict[str, Any] = {"headers": dict(request.headers), "body": body}
        try:
            # Werkzeug's Headers object, passed as is.
            callback = sendpromptly.verify_repair_request(body, request.headers, endpoint.secrets)
        except sendpromptly.SignatureVerificationError as err:
            record["error"] = err
            endpoint.received.append(record)
            return {"error": str(err)}, 400
        # The official package verifies the same request unchanged.
        record["standardwebhooks"] = Webhook(endpoint.secrets[-1]).verify(body, dict(request.headers))
        record["callback"] = callback
        endpoint.received.append(record)
        if endpoint.mode == "success":
            sp.success_for(callback, metadata={"repaired_by": "pytest"})
        elif endpoint.mode == "fail":
            sp.failure_for(callback, "still broken")
        return {"ok": True}, 200

    httpd = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    sp.update_project(repair_url=endpoint.url)
    try:
        yield endpoint
    finally:
        httpd.shutdown()
        thread.join(timeout=5)


def signed_callback(secret: str, body: bytes, msg_id: str, timestamp: Optional[int] = None) -> Dict[str, str]:
    """Standard Webhooks headers made by the official `standardwebhooks` package."""
    from datetime import datetime, timezone

    from standardwebhooks import Webhook

    ts = int(time.time()) if timestamp is None else timestamp
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis broker: SENDPROMPTLY_TEST_REDIS_URL (scripts/test-python.sh
    starts one), else a redis-server started here on a free loopback port."""
    explicit = os.environ.get("SENDPROMPTLY_TEST_REDIS_URL")
    if explicit:
        yield explicit
        return
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: `apt-get install -y redis-server` or set SENDPROMPTLY_TEST_REDIS_URL")
    work = tempfile.mkdtemp(prefix="sendpromptly-redis-")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", work, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _accepts(port), timeout=20, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def down_url() -> str:
    """The URL of a SendPromptly server that is down: a closed loopback port."""
    return f"http://127.0.0.1:{free_port()}"
