"""RetryConfig / BackgroundConfig mirror the Rust structs; bad arguments
raise TypeError / ValueError, never a crash."""

from __future__ import annotations

from datetime import timedelta
from typing import List

import pytest

import sendpromptly
from conftest import Server, unique


RUST_RETRY_FIELDS = [
    "max_attempts",
    "initial_backoff",
    "max_backoff",
    "jitter",
    "total_budget",
    "attempt_timeout",
    "retry_on",
]


def test_retry_config_mirrors_the_rust_defaults() -> None:
    retry = sendpromptly.RetryConfig()
    assert [f for f in RUST_RETRY_FIELDS if not hasattr(retry, f)] == []
    assert (retry.max_attempts, retry.initial_backoff, retry.max_backoff) == (3, 0.1, 1.0)
    assert (retry.jitter, retry.total_budget, retry.attempt_timeout) == (0.5, 3.0, 2.0)
    assert retry.retry_on == sendpromptly.RetryOn()
    background = sendpromptly.RetryConfig.background()
    assert (background.max_attempts, background.total_budget) == (20, 300.0)
    assert sendpromptly.RetryConfig.no_retries(1.5).max_attempts == 1
    assert sendpromptly.RetryConfig(jitter=0.0).backoff(3, 0.5) == pytest.approx(0.4)
    custom = sendpromptly.RetryConfig(total_budget=timedelta(milliseconds=1500), retry_on=sendpromptly.RetryOn.parse("5xx"))
    assert custom.total_budget == 1.5
    assert custom.retry_on.server_errors and not custom.retry_on.connection_errors
    custom.max_attempts = 5
    custom.retry_on = sendpromptly.RetryOn.nothing()
    assert custom.max_attempts == 5 and not custom.retry_on.timeouts
    assert "RetryConfig(" in repr(custom)


def test_retry_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDPROMPTLY_RETRY_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("SENDPROMPTLY_RETRY_TOTAL_BUDGET_MS", "900")
    retry = sendpromptly.RetryConfig.from_env()
    assert retry.max_attempts == 7 and retry.total_budget == 0.9
    monkeypatch.setenv("SENDPROMPTLY_RETRY_JITTER", "1.5")
    with pytest.raises(sendpromptly.ConfigurationError) as info:
        sendpromptly.RetryConfig.from_env()
    assert "SENDPROMPTLY_RETRY_JITTER" in str(info.value) or "jitter" in str(info.value)
    with pytest.raises(sendpromptly.ConfigurationError):
        sendpromptly.Client("sp_live_x", "http://127.0.0.1:9")


def test_client_from_env(monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    monkeypatch.setenv("SENDPROMPTLY_API_KEY", server.api_key)
    monkeypatch.setenv("SENDPROMPTLY_URL", server.url)
    monkeypatch.setenv("SENDPROMPTLY_RETRY_MAX_ATTEMPTS", "2")
    sp = sendpromptly.Client()
    assert sp.retry.max_attempts == 2
    assert sp.base_url == server.url + "/"
    assert sendpromptly.Client.from_env().health()["status"] == "ok"
    monkeypatch.delenv("SENDPROMPTLY_API_KEY")
    with pytest.raises(sendpromptly.ConfigurationError):
        sendpromptly.AsyncClient()


def test_invalid_policies_and_settings_are_refused() -> None:
    with pytest.raises(sendpromptly.ConfigurationError):
        sendpromptly.Client("sp_live_x", "http://127.0.0.1:9", retry=sendpromptly.RetryConfig(max_attempts=0))
    with pytest.raises(sendpromptly.ConfigurationError):
        sendpromptly.RetryConfig(jitter=2.0).validate()
    with pytest.raises(sendpromptly.ConfigurationError):
        sendpromptly.RetryOn.parse("4xx")
    with pytest.raises(sendpromptly.ConfigurationError):
        sendpromptly.Client("not_a_key", "http://127.0.0.1:9")
    with pytest.raises(sendpromptly.ConfigurationError):
        sendpromptly.Client("sp_live_x", "ftp://example.com")
    with pytest.raises(TypeError):
        sendpromptly.RetryConfig(total_budget="3s")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sendpromptly.RetryConfig(total_budget=-1)
    with pytest.raises(TypeError):
        sendpromptly.RetryConfig(max_attempts=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sendpromptly.Client("sp_live_x", "http://127.0.0.1:9", retry="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(event_id="e", event_type="t"), TypeError),  # provider missing
        (dict(provider="stripe", event_id="e"), TypeError),  # event_type missing
        (dict(provider="paypal", event_id="e", event_type="t"), ValueError),
        (dict(provider="stripe", event_id=None, event_type="t"), TypeError),
        (dict(provider="stripe", event_id="", event_type="t"), sendpromptly.ValidationError),
        (dict(provider="stripe", event_id="e", event_type="t", deadline_seconds="10"), TypeError),
        (dict(provider="stripe", event_id="e", event_type="t", deadline_seconds=True), TypeError),
        (dict(provider="stripe", event_id="e", event_type="t", deadline_seconds=0), sendpromptly.ValidationError),
        (dict(provider="stripe", event_id="e", event_type="t", deadline_seconds=-3), ValueError),
        (dict(provider="stripe", event_id="e", event_type="t", metadata=[1, 2]), TypeError),
        (dict(provider="stripe", event_id="e", event_type="t", metadata={1: "a"}), TypeError),
        (dict(provider="stripe", event_id="e", event_type="t", metadata={"a": {1, 2}}), TypeError),
        (dict(provider="stripe", event_id="e", event_type="t", metadata={"a": float("nan")}), ValueError),
        (dict(provider="stripe", event_id="e", event_type="t", metadata={"a": "x" * 9000}), sendpromptly.ValidationError),
        (dict(provider="stripe", event_id="e", event_type="t", occurred_at="yesterday"), ValueError),
        (dict(provider="stripe", event_id="e", event_type="t", occurred_at=object()), TypeError),
        (dict(provider="stripe", event_id="e", event_type="t", nope=1), TypeError),
    ],
)
def test_bad_receipt_arguments(kwargs: dict, error: type) -> None:
    sp = sendpromptly.Client("sp_live_x", "http://127.0.0.1:9")
    with pytest.raises(error):
        sp.receipt(**kwargs)


def test_bad_result_and_ops_arguments() -> None:
    sp = sendpromptly.Client("sp_live_x", "http://127.0.0.1:9")
    with pytest.raises(ValueError):
        sp.result(provider="stripe", event_id="e", status="maybe")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sp.failure(provider="stripe", event_id="e")  # type: ignore[call-arg]
    with pytest.raises(sendpromptly.ValidationError):
        sp.failure(provider="stripe", event_id="e", error="x" * 5000)
    with pytest.raises(TypeError):
        sp.success_for(42)  # type: ignore[arg-type]
    with pytest.raises(sendpromptly.MalformedRequestError):
        sp.success_for({"not": "an event"})
    with pytest.raises(ValueError):
        sp.list_incidents(state="closed")
    with pytest.raises(ValueError):
        sp.create_proof_link("inc_1", expires_in=-1)
    with pytest.raises(TypeError):
        sp.update_project(repair_url=5)


def test_background_delivers_counts_and_reports_drops(server: Server, client: sendpromptly.Client) -> None:
    dropped: List[sendpromptly.DroppedSignal] = []
    background = client.background(sendpromptly.BackgroundConfig(capacity=50, concurrency=2, on_drop=dropped.append))
    ids = [unique() for _ in range(5)]
    for event_id in ids:
        assert background.receipt(provider="stripe", event_id=event_id, event_type="invoice.paid")
    assert background.failure(provider="stripe", event_id=ids[0], error="boom")
    # Invalid: dropped, reported, never raised.
    assert background.receipt(provider="stripe", event_id="", event_type="invoice.paid") is False
    assert background.flush(10)
    stats = background.stats()
    assert (stats.enqueued, stats.delivered, stats.dropped_invalid, stats.pending) == (6, 6, 1, 0)
    assert [d.reason for d in dropped] == ["invalid"]
    assert client.get_event("stripe", ids[0])["event"]["state"] == "failed"
    final = background.shutdown(5)
    assert final.delivered == 6
    assert background.success(provider="stripe", event_id=ids[1]) is False
    assert dropped[-1].reason == "closed"

    # Nothing listening: the signal gives up within its budget and on_drop
    # gets the error.
    down = sendpromptly.Client(server.api_key, "http://127.0.0.1:9")
    lost: List[sendpromptly.DroppedSignal] = []
    quick = down.background(
        sendpromptly.BackgroundConfig(retry=sendpromptly.RetryConfig.no_retries(0.5), on_drop=lost.append)
    )
    assert quick.receipt(provider="custom", event_id="job-1", event_type="job.done", metadata={"rows": 1})
    assert quick.flush(10)
    assert quick.stats().gave_up == 1
    assert lost[0].reason == "gave_up"
    assert isinstance(lost[0].error, sendpromptly.APIConnectionError)
    assert lost[0].signal["kind"] == "receipt" and lost[0].signal["metadata"] == {"rows": 1}
    assert lost[0].idempotency_key.startswith("sp_idem_")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_on_drop_callback_that_raises_is_contained(client: sendpromptly.Client) -> None:
    def explode(_: sendpromptly.DroppedSignal) -> None:
        raise RuntimeError("callback bug")

    background = client.background(sendpromptly.BackgroundConfig(on_drop=explode))
    assert background.receipt(provider="stripe", event_id="", event_type="t") is False
    assert background.stats().dropped_invalid == 1


def test_page_limits_follow_the_contract() -> None:
    # 1 to 100 (the core's MAX_PAGE_LIMIT, what the server accepts), refused
    # before sending: nothing listens on port 9.
    sp = sendpromptly.Client("sp_live_x", "http://127.0.0.1:9")
    for call in (sp.list_incidents, sp.search_events):
        for limit in (0, 101, 1000):
            with pytest.raises(sendpromptly.ValidationError) as info:
                call(limit=limit)
            assert info.value.param == "limit"
            assert "whole number from 1 to 100" in str(info.value)
