"""Dev mode (logic in the Rust client): with ``SENDPROMPTLY_DEV=1`` and no
server, each signal is logged instead of sent and the calls succeed, so
instrumentation can be added before SendPromptly is set up; production
refuses it unless forced."""

from __future__ import annotations

import pytest

import sendpromptly


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("SENDPROMPTLY_API_KEY", "SENDPROMPTLY_URL", "SENDPROMPTLY_ENV", "NODE_ENV"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_dev_mode_logs_each_signal_instead_of_failing(
    no_server: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    no_server.setenv("SENDPROMPTLY_DEV", "1")
    sp = sendpromptly.Client()
    receipt = sp.receipt(provider="stripe", event_id="evt_py_dev", event_type="invoice.paid", subject="cus_dev")
    assert receipt.created
    failed = sp.failure(provider="stripe", event_id="evt_py_dev", error="tenant missing")
    assert failed.event["state"] == "failed"
    err = capfd.readouterr().err
    assert "DEV MODE" in err and "unsetting SENDPROMPTLY_DEV" in err, err
    assert "would POST /v1/receipt" in err and '"event_id":"evt_py_dev"' in err, err
    assert "would POST /v1/result" in err and "tenant missing" in err, err


def test_without_a_key_or_dev_mode_the_error_says_how_to_start(no_server: pytest.MonkeyPatch) -> None:
    no_server.delenv("SENDPROMPTLY_DEV", raising=False)
    with pytest.raises(sendpromptly.ConfigurationError, match="SENDPROMPTLY_DEV=1"):
        sendpromptly.Client()


def test_production_refuses_dev_mode(no_server: pytest.MonkeyPatch) -> None:
    no_server.setenv("SENDPROMPTLY_DEV", "1")
    no_server.setenv("SENDPROMPTLY_ENV", "production")
    with pytest.raises(sendpromptly.ConfigurationError, match="SENDPROMPTLY_DEV=force"):
        sendpromptly.Client()
