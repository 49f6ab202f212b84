"""Fork safety: a client (and a background queue) created before os.fork()
works in the child, as in gunicorn / uwsgi pre-fork workers."""

from __future__ import annotations

import os
import sys

import pytest

import sendpromptly
from conftest import unique


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_client_and_background_work_after_fork(client: sendpromptly.Client) -> None:
    # Warm the parent's runtime and connection pool first.
    assert client.health()["status"] == "ok"
    background = client.background()
    parent_event = unique()
    assert background.receipt(provider="custom", event_id=parent_event, event_type="job.done")
    assert background.flush(10)

    child_events = [unique(), unique()]
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            first = client.receipt(provider="custom", event_id=child_events[0], event_type="job.done")
            ok = first.created
            ok = ok and background.receipt(provider="custom", event_id=child_events[1], event_type="job.done")
            ok = ok and background.flush(10) and background.stats().delivered == 1
            code = 0 if ok else 2
        except BaseException as err:  # noqa: BLE001
            print(f"child failed: {err!r}", file=sys.stderr)
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    # The parent is unaffected.
    for event_id in child_events:
        assert client.get_event("custom", event_id)["event"]["event_id"] == event_id
    assert background.stats().delivered == 1
    assert client.success(provider="custom", event_id=parent_event).event["state"] == "succeeded"
