"""The HTTP helper's retry rules, against the simulator on loopback (real HTTP, no mocks)."""

from __future__ import annotations

import email.utils
import json
import urllib.request

import pytest

from civicflow.httpclient import FeedClient, FeedError, RetryPolicy, retry_after_seconds
from civicflow.simulator.server import RunningSimulator


@pytest.fixture
def sim():
    with RunningSimulator(port=0) as running:
        yield running


def faults(sim: RunningSimulator, *rules: dict) -> None:
    body = json.dumps({"rules": list(rules)}).encode()
    request = urllib.request.Request(f"{sim.url}/_sim/faults", data=body, method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def client(sim: RunningSimulator, **kwargs) -> tuple[FeedClient, list[float]]:
    waits: list[float] = []
    policy = RetryPolicy(**{"backoff_base_s": 0.5, "backoff_max_s": 8.0, **kwargs})
    made = FeedClient("positions", f"{sim.url}/positions", policy=policy, sleep=waits.append)
    return made, waits


def test_retry_after_is_honoured_on_429(sim):
    faults(sim, {"path": "/positions/positions", "status": 429, "retry_after": "7", "times": 2})
    feed, waits = client(sim)
    document = feed.get_json("positions").document
    assert len(document) == 254
    assert waits == [7.0, 7.0]


def test_5xx_is_retried_with_growing_backoff(sim):
    faults(
        sim,
        {"path": "/positions/positions", "status": 500, "times": 1},
        {"path": "/positions/positions", "status": 502, "times": 1},
        {"path": "/positions/positions", "status": 504, "times": 1},
    )
    feed, waits = client(sim)
    feed.get("positions")
    assert feed.attempts == 4
    assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0 and 1.0 <= waits[2] <= 2.0


def test_other_4xx_is_not_retried_and_the_error_names_feed_url_and_status(sim):
    feed, waits = client(sim)
    with pytest.raises(FeedError) as caught:
        feed.get("no-such-thing", {"x": "1"})
    assert feed.attempts == 1 and waits == []
    message = str(caught.value)
    assert message.startswith(f"positions feed: {sim.url}/positions/no-such-thing?x=1: HTTP 404")
    assert caught.value.status == 404


def test_it_gives_up_after_the_last_attempt(sim):
    faults(sim, {"path": "/positions/divisions", "status": 503, "times": 10})
    feed, waits = client(sim, max_attempts=3)
    with pytest.raises(FeedError, match=r"gave up after 3 attempts; last: HTTP 503"):
        feed.get("divisions")
    assert len(waits) == 2


def test_a_retry_after_longer_than_allowed_fails_at_once(sim):
    faults(sim, {"path": "/positions/divisions", "status": 429, "retry_after": "3600"})
    feed, waits = client(sim)
    with pytest.raises(FeedError, match="retry after 3600 s"):
        feed.get("divisions")
    assert waits == []


def test_read_timeouts_and_connection_resets_are_retried(sim, caplog):
    faults(
        sim,
        {"path": "/positions/divisions", "kind": "slow", "delay_s": 6, "times": 1},
        {"path": "/positions/divisions", "kind": "reset", "times": 1},
    )
    feed, waits = client(sim)
    feed.read_timeout_s = 2.0
    document = feed.get_json("divisions").document
    assert len(document["streets"]) == 18
    retried = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert "ReadTimeout" in retried[0] and "RemoteDisconnected" in retried[1], retried
    assert [rule.times for rule in sim.state.rules] == [0, 0]
    # On a loaded machine an ordinary answer can also outlast the time-out: one more retry.
    assert feed.attempts == len(waits) + 1 == len(retried) + 1 >= 3


def test_a_body_that_is_not_json_is_a_clear_error(sim):
    faults(sim, {"path": "/positions/positions", "kind": "html"})
    feed, _ = client(sim)
    with pytest.raises(FeedError, match=r"body is not valid JSON.*text/html.*502 Bad Gateway"):
        feed.get_json("positions")


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("12") == 12.0
    when = email.utils.formatdate(1_000_060, usegmt=True)
    assert retry_after_seconds(when, now=1_000_000) == pytest.approx(60)
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
