"""The feed simulator's HTTP service: the departments' interfaces, with faults on demand.

Feeds are mounted under their own prefix (``/positions/...``), so a
connection's host is a base URL with a path, as real gateways have. Tests
steer it through ``/_sim/``:

- ``POST /_sim/faults`` with ``{"rules": [...]}`` adds fault rules; each rule has
  ``path`` (prefix), ``kind`` (``status``, ``slow``, ``reset``, ``reset_mid_body``,
  ``malformed_body``, ``html``, ``body``, ``bad_record``), ``times``, ``after``, and per
  kind ``status``, ``retry_after``, ``delay_s``, ``field``, ``value``, ``index``;
  ``DELETE /_sim/faults`` clears them. ``reset`` drops the connection before answering;
  ``reset_mid_body`` sends the headers and half the body, then resets the connection (TCP
  RST); ``body`` serves ``value`` (text) in place of the real body, with the real status and
  headers (an ``.xlsx`` that is no workbook, say).
- ``POST /_sim/correct?date=YYYY-MM-DD`` re-sends that day with corrected numbers.
- ``POST /_sim/civil_affairs/corrupt?date=YYYY-MM-DD`` serves that day's export with bytes
  that no longer match the index (``DELETE`` mends them);
- ``POST /_sim/elderly_care/republish?count=N`` publishes corrected versions of N ledgers now;
- ``POST /_sim/health/cancel?count=N`` cancels N health records now;
  ``POST /_sim/volunteer/revoke?count=N`` revokes N service-hour records now.
- ``GET /_sim/truth[?feed=health|volunteer|civil_affairs[&date=]|elderly_care[&months=]]``
  tells what the simulator serves and what a load should make of it;
  ``GET /_sim/truth?feed=services[&months=]`` lists every row a load of the health, elderly-care
  (the newest ledger versions of ``months``, default all) and volunteer-help feeds makes in
  ``core.fact_service``, with the canonical ID number of the person served;
  ``GET /_sim/stats`` counts requests and tokens.

The health feed (``/health/...``) issues OAuth tokens that expire after
``token_uses`` calls, so a client must renew them in the middle of paging. The
volunteer platform (``/volunteer/...``) answers 429 with ``Retry-After`` above
``rate_limit`` requests a second, and 410 to a cursor older than
``cursor_ttl_s``; a fault rule with ``after`` lets a test expire one mid-listing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import secrets
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from civicflow.simulator.civil_affairs import CivilAffairsFeed
from civicflow.simulator.elderly_care import ElderlyCareFeed
from civicflow.simulator.health import HealthFeed
from civicflow.simulator.people import residents
from civicflow.simulator.volunteer import VolunteerFeed
from civicflow.simulator.world import (
    District,
    build_district,
    divisions_document,
    positions_document,
    visits_document,
)

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class FaultRule:
    path: str
    kind: str = "status"
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    delay_s: float = 0.0
    field: str | None = None
    value: Any = None
    index: int = 0
    after: int = 0  # let this many matching requests through first

    KINDS = frozenset(
        {
            "status",
            "slow",
            "reset",
            "reset_mid_body",
            "malformed_body",
            "html",
            "body",
            "bad_record",
        }
    )

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(self.KINDS)}")


DEMO_CLIENT = ("civicflow", "simulator-secret")  # the simulator's own, not a real secret
DEMO_API_KEY = "simulator-api-key"  # likewise
DEMO_REGISTER_LOGIN = ("civicflow", "simulator-password")  # likewise
DEMO_LEDGER_TOKEN = "simulator-ledger-token"  # noqa: S105 - likewise


@dataclass
class SimulatorState:
    district: District
    basic_auth: tuple[str, str] | None = None
    scale: float = 0.001
    as_of: dt.date = field(default_factory=lambda: dt.datetime.now(SHANGHAI).date())
    client: tuple[str, str] = DEMO_CLIENT
    token_uses: int = 5
    api_key: str = DEMO_API_KEY
    register_login: tuple[str, str] = DEMO_REGISTER_LOGIN
    ledger_token: str = DEMO_LEDGER_TOKEN
    rate_limit: int = 10  # requests a second before 429
    cursor_ttl_s: float = 600.0
    corrections: dict[str, int] = field(default_factory=dict)
    rules: list[FaultRule] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # token -> calls left
    tokens_issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _health: HealthFeed | None = None
    _volunteer: VolunteerFeed | None = None
    _civil_affairs: CivilAffairsFeed | None = None
    _elderly_care: ElderlyCareFeed | None = None
    recent: list[float] = field(default_factory=list)  # request times, for the rate limit

    @property
    def health(self) -> HealthFeed:
        with self.lock:
            if self._health is None:
                people = residents(self.district, self.scale)
                self._health = HealthFeed(people, self.scale, self.as_of, self.district.seed)
            return self._health

    @property
    def volunteer(self) -> VolunteerFeed:
        with self.lock:
            if self._volunteer is None:
                people = residents(self.district, self.scale)
                self._volunteer = VolunteerFeed(
                    self.district, people, self.scale, self.as_of, self.district.seed
                )
            return self._volunteer

    @property
    def civil_affairs(self) -> CivilAffairsFeed:
        with self.lock:
            if self._civil_affairs is None:
                people = residents(self.district, self.scale)
                self._civil_affairs = CivilAffairsFeed(
                    self.district, people, self.scale, self.as_of, self.district.seed
                )
            return self._civil_affairs

    @property
    def elderly_care(self) -> ElderlyCareFeed:
        with self.lock:
            if self._elderly_care is None:
                people = residents(self.district, self.scale)
                self._elderly_care = ElderlyCareFeed(
                    self.district, people, self.scale, self.as_of, self.district.seed
                )
            return self._elderly_care

    def take_fault(self, path: str) -> FaultRule | None:
        with self.lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            for rule in self.rules:
                if rule.times > 0 and path.startswith(rule.path):
                    if rule.after > 0:
                        rule.after -= 1
                        continue
                    rule.times -= 1
                    return rule
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "civicflow-simulator/0.1"
    protocol_version = "HTTP/1.1"
    state: SimulatorState  # set on the subclass made by make_server
    fault: FaultRule | None = None  # the rule taken by the request being answered

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # --- plumbing --------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers=None) -> None:
        fault, self.fault = self.fault, None
        if fault and fault.kind == "body":
            body = str(fault.value if fault.value is not None else "not the file").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if fault and fault.kind == "reset_mid_body":
            self.wfile.write(body[: len(body) // 2])
            # Linger 0: closing sends a TCP RST, as a crashed proxy does, not an orderly FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _json(self, status: int, document: Any, headers=None, default=None) -> None:
        body = json.dumps(document, ensure_ascii=False, default=default).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # --- routes ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.fault = None
        if url.path.startswith("/_sim/"):
            self._admin(method, url.path, query)
            return
        rule = self.state.take_fault(url.path)
        self.fault = rule if rule and rule.kind in ("reset_mid_body", "body") else None
        if rule and rule.kind == "reset":
            self._read_body()
            self.close_connection = True
            return
        if rule and rule.kind == "slow":
            time.sleep(rule.delay_s)
        if rule and rule.kind == "status":
            headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
            self._json(rule.status, {"error": f"simulated HTTP {rule.status}"}, headers)
            return
        if rule and rule.kind == "html":
            page = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
            self._send(200, page, "text/html")
            return
        if url.path.startswith("/health/"):
            document = self._health(method, url.path.removeprefix("/health"), query)
        elif url.path.startswith("/volunteer/") and method == "GET":
            document = self._volunteer(url.path.removeprefix("/volunteer"), query)
        elif method != "GET":
            self._error(405, "method not allowed")
            return
        elif url.path.startswith("/positions/"):
            document = self._positions(url.path.removeprefix("/positions"), query)
        elif url.path.startswith("/civil_affairs/"):
            document = self._civil_affairs(url.path.removeprefix("/civil_affairs"))
        elif url.path.startswith("/elderly_care/"):
            document = self._elderly_care(unquote(url.path.removeprefix("/elderly_care")), query)
        else:
            self._error(404, f"no such resource {url.path}")
            return
        if document is None:
            return
        if rule and rule.kind == "bad_record" and isinstance(document, list) and document:
            document[rule.index % len(document)][rule.field or "value"] = rule.value
        if rule and rule.kind == "malformed_body":
            body = json.dumps(document, ensure_ascii=False).encode("utf-8")
            self._send(200, body[: max(1, len(body) // 2)], "application/json")
            return
        self._json(200, document)

    def _authorised(self, login: tuple[str, str] | None = None) -> bool:
        login = login or self.state.basic_auth
        if not login:
            return True
        expected = base64.b64encode(":".join(login).encode()).decode()
        if self.headers.get("Authorization") == f"Basic {expected}":
            return True
        self._json(401, {"error": "authentication required"}, {"WWW-Authenticate": "Basic"})
        return False

    def _health(self, method: str, path: str, query: dict[str, str]) -> Any:
        state = self.state
        if path == "/oauth/token" and method == "POST":
            form = {k: v[-1] for k, v in parse_qs(self._read_body().decode()).items()}
            if form.get("grant_type") != "client_credentials":
                self._json(400, {"error": "unsupported_grant_type"})
                return None
            if (form.get("client_id"), form.get("client_secret")) != state.client:
                self._json(401, {"error": "invalid_client"})
                return None
            token = secrets.token_urlsafe(16)
            with state.lock:
                state.tokens[token] = state.token_uses
                state.tokens_issued += 1
            return {"access_token": token, "token_type": "Bearer", "expires_in": 300}
        if path == "/api/v1/service-records" and method == "GET":
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            with state.lock:
                left = state.tokens.get(token, 0)
                if left > 0:
                    state.tokens[token] = left - 1
            if left <= 0:
                self._json(401, {"error": "invalid_token", "error_description": "expired"})
                return None
            try:
                since_text = query.get("updated_since")
                since = (
                    dt.datetime.fromisoformat(since_text.replace(" ", "+")) if since_text else None
                )
                page = int(query.get("page", "1"))
                size = min(int(query.get("page_size", "500")), 1000)
                if since is not None and since.tzinfo is None:
                    since = since.replace(tzinfo=SHANGHAI)
            except ValueError as exc:
                self._error(400, f"bad query: {exc}")
                return None
            if page < 1 or size < 1:
                self._error(400, "page and page_size must be positive")
                return None
            rows = state.health.listing(since)
            pages = max(1, -(-len(rows) // size))
            return {
                "data": rows[(page - 1) * size : page * size],
                "page": page,
                "page_size": size,
                "total": len(rows),
                "total_pages": pages,
            }
        self._error(404 if method == "GET" else 405, f"no such resource /health{path}")
        return None

    def _volunteer(self, path: str, query: dict[str, str]) -> Any:
        state = self.state
        if self.headers.get("X-Api-Key") != state.api_key:
            self._json(401, {"error": "missing or wrong X-Api-Key"})
            return None
        now = time.monotonic()
        with state.lock:
            state.recent = [t for t in state.recent if now - t < 1.0]
            limited = len(state.recent) >= state.rate_limit
            if not limited:
                state.recent.append(now)
        if limited:
            self._json(429, {"error": "rate limited"}, {"Retry-After": "1"})
            return None
        entity = path.removeprefix("/v2/")
        if entity not in ("volunteers", "activities", "service-hours"):
            self._error(404, f"no such resource /volunteer{path}")
            return None
        try:
            limit = min(int(query.get("limit", "500")), 1000)
            if query.get("cursor"):
                cursor = json.loads(base64.urlsafe_b64decode(query["cursor"]))
                offset, since_text, issued = cursor["o"], cursor["s"], cursor["t"]
            else:
                offset, since_text, issued = 0, query.get("updated_since"), time.time()
            since = dt.datetime.fromisoformat(since_text.replace(" ", "+")) if since_text else None
        except (ValueError, KeyError, TypeError) as exc:
            self._error(400, f"bad query: {exc}")
            return None
        if time.time() - issued > state.cursor_ttl_s:
            self._json(410, {"error": "cursor expired; start again from updated_since"})
            return None
        rows = state.volunteer.listing(entity, since)
        page = rows[offset : offset + limit]
        following = None
        if offset + limit < len(rows):
            following = base64.urlsafe_b64encode(
                json.dumps({"o": offset + limit, "s": since_text, "t": issued}).encode()
            ).decode()
        return {"items": page, "next_cursor": following}

    def _civil_affairs(self, path: str) -> Any:
        if not self._authorised(self.state.register_login):
            return None
        feed = self.state.civil_affairs
        if path == "/exports/index.json":
            return {"exports": feed.exports()}
        if path.startswith("/exports/"):
            body = feed.file(path.removeprefix("/exports/"))
            if body is not None:
                self._send(200, body, "text/csv; charset=gb18030")
                return None
        self._error(404, f"no such resource /civil_affairs{path}")
        return None

    def _elderly_care(self, path: str, query: dict[str, str]) -> Any:
        if self.headers.get("X-Api-Token") != self.state.ledger_token:
            self._json(401, {"error": "missing or wrong X-Api-Token"})
            return None
        feed = self.state.elderly_care
        if path == "/ledgers":
            month = query.get("month", "")
            try:
                dt.datetime.strptime(month, "%Y-%m")
            except ValueError:
                self._error(400, "month=YYYY-MM is required")
                return None
            return {"ledgers": feed.listing(month)}
        if path.startswith("/ledgers/"):
            body = feed.workbook(path.removeprefix("/ledgers/"))
            if body is not None:
                xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                self._send(200, body, xlsx)
                return None
        self._error(404, f"no such resource /elderly_care{path}")
        return None

    def _positions(self, path: str, query: dict[str, str]) -> Any:
        if not self._authorised():
            return None
        district = self.state.district
        if path == "/divisions":
            return divisions_document(district)
        if path == "/positions":
            return positions_document(district)
        if path == "/visits":
            try:
                day = dt.date.fromisoformat(query["date"])
            except (KeyError, ValueError):
                self._error(400, "date=YYYY-MM-DD is required")
                return None
            if day > dt.datetime.now(SHANGHAI).date():
                self._error(404, f"no tallies yet for {day}")
                return None
            return visits_document(district, day, self.state.corrections.get(day.isoformat(), 0))
        self._error(404, f"no such resource /positions{path}")
        return None

    def _admin(self, method: str, path: str, query: dict[str, str]) -> None:
        state = self.state
        if path == "/_sim/faults" and method == "POST":
            try:
                rules = [FaultRule(**r) for r in json.loads(self._read_body())["rules"]]
            except (ValueError, KeyError, TypeError) as exc:
                self._error(400, f"bad fault rules: {exc}")
                return
            with state.lock:
                state.rules.extend(rules)
            self._json(200, {"rules": len(state.rules)})
        elif path == "/_sim/faults" and method == "DELETE":
            with state.lock:
                state.rules.clear()
                state.requests.clear()
            self._json(200, {"rules": 0})
        elif path == "/_sim/correct" and method == "POST":
            day = query.get("date", "")
            with state.lock:
                state.corrections[day] = state.corrections.get(day, 0) + 1
            self._json(200, {"date": day, "version": state.corrections[day]})
        elif path == "/_sim/health/cancel" and method == "POST":
            chosen = state.health.cancel(int(query.get("count", "1")), dt.datetime.now(SHANGHAI))
            self._json(200, {"cancelled": chosen})
        elif path == "/_sim/volunteer/revoke" and method == "POST":
            chosen = state.volunteer.revoke(int(query.get("count", "1")), dt.datetime.now(SHANGHAI))
            self._json(200, {"revoked": chosen})
        elif path == "/_sim/civil_affairs/corrupt" and method == "POST":
            name = state.civil_affairs.corrupt(dt.date.fromisoformat(query["date"]))
            self._json(200, {"corrupt": name})
        elif path == "/_sim/civil_affairs/corrupt" and method == "DELETE":
            state.civil_affairs.corrupt_files.clear()
            self._json(200, {"corrupt": []})
        elif path == "/_sim/elderly_care/republish" and method == "POST":
            files = state.elderly_care.republish(
                int(query.get("count", "1")), dt.datetime.now(SHANGHAI)
            )
            self._json(200, {"republished": files})
        elif path == "/_sim/stats":
            with state.lock:
                self._json(
                    200, {"requests": dict(state.requests), "tokens_issued": state.tokens_issued}
                )
        elif path == "/_sim/truth" and query.get("feed") == "health":
            self._json(200, state.health.truth())
        elif path == "/_sim/truth" and query.get("feed") == "volunteer":
            self._json(200, state.volunteer.truth())
        elif path == "/_sim/truth" and query.get("feed") == "elderly_care":
            months = query["months"].split(",") if query.get("months") else None
            self._json(200, state.elderly_care.truth(months), default=str)
        elif path == "/_sim/truth" and query.get("feed") == "services":
            months = query["months"].split(",") if query.get("months") else None
            rows = [
                *state.health.services(),
                *state.elderly_care.services(months),
                *state.volunteer.services(),
            ]
            self._json(200, {"services": rows, "count": len(rows)})
        elif path == "/_sim/truth" and query.get("feed") == "civil_affairs":
            feed = state.civil_affairs
            day = dt.date.fromisoformat(query.get("date", feed.days[-1].isoformat()))
            self._json(200, feed.truth(day))
        elif path == "/_sim/truth":
            self._json(200, truth(state.district, query.get("date")))
        else:
            self._error(404, f"no such admin resource {path}")


def truth(district: District, day: str | None = None) -> dict[str, Any]:
    """What the simulator serves, for tests to compare the warehouse with."""
    out: dict[str, Any] = {
        "streets": len(district.streets),
        "communities": len(district.communities),
        "positions": len(district.positions),
        "positions_by_level": {},
        "open_positions": sum(1 for p in district.positions if p.status == "open"),
    }
    for p in district.positions:
        out["positions_by_level"][p.level] = out["positions_by_level"].get(p.level, 0) + 1
    if day:
        out["visits"] = len(visits_document(district, dt.date.fromisoformat(day)))
    return out


class SimulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a time-out test) leaves a broken pipe: expected, not news.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 20261127,
    basic_auth: tuple[str, str] | None = None,
    **options: Any,
) -> ThreadingHTTPServer:
    """The simulator; ``options`` are SimulatorState fields (scale, as_of, token_uses, ...)."""
    state = SimulatorState(district=build_district(seed), basic_auth=basic_auth, **options)
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = SimulatorServer((host, port), handler)
    server.state = state  # type: ignore[attr-defined]
    return server


class RunningSimulator:
    """The simulator on a background thread, for tests and the demo: ``with RunningSimulator()``."""

    def __init__(self, **kwargs: Any):
        self.server = make_server(**kwargs)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def state(self) -> SimulatorState:
        return self.server.state  # type: ignore[attr-defined]

    def __enter__(self) -> RunningSimulator:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
