"""The one HTTP helper every feed uses.

A requests session with time-outs on every call, exponential backoff with
jitter on 429 and 5xx (honouring ``Retry-After``), retries on connection
resets and read time-outs, no retry on any other 4xx, and errors that name the
feed, the URL and the status. It never returns fallback data.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urljoin

import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class FeedError(RuntimeError):
    """A feed could not be read; the message names the feed, the URL and the reason."""

    def __init__(self, feed: str, url: str, reason: str, status: int | None = None):
        self.feed, self.url, self.reason, self.status = feed, url, reason, status
        super().__init__(f"{feed} feed: {url}: {reason}")


class Fetched(NamedTuple):
    document: Any  # the decoded JSON; None for a file, which the entity decodes itself
    body: bytes
    url: str
    content_type: str = "application/json"
    meta: Mapping[str, Any] = {}  # what the feed said about it (a snapshot's date, a version)


@dataclass
class ClientCredentials:
    """OAuth 2 client credentials: a bearer token, fetched when needed and renewed on 401."""

    token_path: str
    client_id: str
    client_secret: str
    token: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0  # a Retry-After longer than this is a failure, not a wait

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given 1-based failed attempt."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not secrecy


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class FeedClient:
    """HTTP access to one feed's base URL."""

    feed: str
    base_url: str
    auth: tuple[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)
    oauth: ClientCredentials | None = None

    def __post_init__(self) -> None:
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        self.session.headers.update({"User-Agent": "civicflow/0.1", **self.headers})
        if self.auth:
            self.session.auth = self.auth
        self.attempts = 0  # requests sent, retries included: for audits and tests

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        return self.request("GET", path, params=params)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call with retries; with OAuth, a 401 renews the token once and repeats the call."""
        if self.oauth is None:
            return self._request(method, path, **kwargs)
        for renew in (False, True):
            if renew or self.oauth.token is None:
                self._renew_token()
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.oauth.token}"}
            try:
                return self._request(method, path, headers=headers, **kwargs)
            except FeedError as exc:
                if exc.status != 401 or renew:
                    raise
                log.info("%s feed: token refused (401); fetching a new one", self.feed)
                kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
        raise AssertionError("unreachable")

    def _renew_token(self) -> None:
        assert self.oauth is not None
        response = self._request(
            "POST",
            self.oauth.token_path,
            data={
                "grant_type": "client_credentials",
                "client_id": self.oauth.client_id,
                "client_secret": self.oauth.client_secret,
            },
        )
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FeedError(
                self.feed, response.url, f"token response has no access_token{_body_hint(response)}"
            ) from exc
        self.oauth.token = token

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.url(path)
        shown = requests.Request(method, url, params=kwargs.get("params")).prepare().url or url
        last = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            self.attempts += 1
            wait: float | None = None
            try:
                response = self.session.request(
                    method,
                    url,
                    timeout=(self.connect_timeout_s, self.read_timeout_s),
                    **kwargs,
                )
                # Read the body here, so a reset in the middle of it is retried too: requests
                # reports that as a ChunkedEncodingError, which is no ConnectionError.
                _ = response.content
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                status = f"HTTP {response.status_code} {response.reason}"
                if response.status_code not in RETRY_STATUSES:
                    raise FeedError(
                        self.feed,
                        shown,
                        f"{status} (not retried: a client error means a wrong request or "
                        f"configuration){_body_hint(response)}",
                        response.status_code,
                    )
                last = status
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None and wait > self.policy.retry_after_max_s:
                    raise FeedError(
                        self.feed,
                        shown,
                        f"{status} asks to retry after {wait:.0f} s, longer than the "
                        f"{self.policy.retry_after_max_s:.0f} s allowed",
                        response.status_code,
                    )
            if attempt == self.policy.max_attempts:
                break
            delay = wait if wait is not None else self.policy.backoff(attempt)
            log.warning(
                "%s feed: %s %s: %s; retry %d of %d in %.1f s",
                self.feed,
                method,
                shown,
                last,
                attempt,
                self.policy.max_attempts - 1,
                delay,
            )
            self.sleep(delay)
        raise FeedError(
            self.feed, shown, f"gave up after {self.policy.max_attempts} attempts; last: {last}"
        )

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Fetched:
        """The decoded JSON body, its raw bytes and the URL; a body that is not JSON is an error."""
        response = self.get(path, params)
        try:
            return Fetched(response.json(), response.content, response.url)
        except ValueError as exc:
            shown = response.url or self.url(path)
            content_type = response.headers.get("Content-Type")
            # A page that is no JSON (a proxy's HTML error page) is quoted; the start of a
            # broken JSON document is not: it is the feed's data, ID numbers and names
            # included, and the message goes to meta.load_audit, which analysts read.
            hint = "" if "json" in (content_type or "").lower() else _body_hint(response)
            raise FeedError(
                self.feed,
                shown,
                f"HTTP {response.status_code} body is not valid JSON ({exc}); "
                f"content-type {content_type!r}{hint}",
                response.status_code,
            ) from exc

    def download(
        self,
        path: str,
        meta: Mapping[str, Any] | None = None,
        sha256: str | None = None,
        size: int | None = None,
    ) -> Fetched:
        """A file, checked against the checksum and size its index gives, when it gives them.

        A mismatch is a corrupt file: a :class:`FeedError`, which this client does not retry
        (the task's own retries fetch the file again, in case the department re-exported it).
        """
        response = self.get(path)
        body = response.content
        shown = response.url or self.url(path)
        if size is not None and len(body) != size:
            raise FeedError(
                self.feed,
                shown,
                f"the file has {len(body)} bytes, the index says {size}: a corrupt or truncated "
                "export is never loaded",
            )
        if sha256 is not None:
            actual = hashlib.sha256(body).hexdigest()
            if actual != sha256.strip().lower():
                raise FeedError(
                    self.feed,
                    shown,
                    f"sha256 {actual} does not match the index's {sha256}: a corrupt export is "
                    "never loaded",
                )
        content_type = response.headers.get("Content-Type", "application/octet-stream")
        return Fetched(None, body, shown, content_type, dict(meta or {}))

    def close(self) -> None:
        self.session.close()


def _body_hint(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f"; body starts {text[:120]!r}" if text else ""


def client_for(settings: Any, **kwargs: Any) -> FeedClient:
    """A client for a feed's settings, presenting the credentials as the feed's interface asks."""
    from civicflow.config import FEED_AUTH

    scheme = FEED_AUTH.get(settings.feed, "basic")
    headers = dict(settings.headers)
    auth = None
    oauth = None
    login, password = settings.auth or (None, None)
    if scheme == "basic":
        auth = settings.auth if login else None
    elif scheme.startswith("header:"):
        if password:
            headers[scheme.removeprefix("header:")] = password
    elif scheme == "oauth2_client_credentials" and login:
        token_path = settings.options.get("token_path", "oauth/token")
        oauth = ClientCredentials(token_path, login, password or "")
    return FeedClient(
        settings.feed, settings.base_url, auth=auth, headers=headers, oauth=oauth, **kwargs
    )
