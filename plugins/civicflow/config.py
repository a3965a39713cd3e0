"""Plain settings for the pipeline: feed endpoints, the warehouse, the person-key secret.

Airflow connections are turned into these by ``civicflow.airflow.connections``;
everything else in the package takes plain settings, so it runs and is tested
without Airflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

# Connection ids fixed by the departments' interface document.
FEED_CONNECTIONS = {
    "civil_affairs": "civil_affairs_feed",
    "health": "health_feed",
    "elderly_care": "elderly_care_feed",
    "volunteer": "volunteer_feed",
    "positions": "positions_feed",
}
# How each feed's connection credentials (login, password) are presented.
FEED_AUTH = {
    "civil_affairs": "basic",
    "health": "oauth2_client_credentials",
    "elderly_care": "header:X-Api-Token",
    "volunteer": "header:X-Api-Key",
    "positions": "basic",  # only when the connection has a login
}
WAREHOUSE_CONNECTION = "warehouse"
PERSON_KEY_CONNECTION = "civicflow_person_key"
PERSON_KEY_ENV = "CIVICFLOW_PERSON_KEY"
ENVIRONMENT_ENV = "CIVICFLOW_ENV"

# Alerts (civicflow.alerts): a failed task is reported by one channel, the log by default.
ALERT_CHANNEL_ENV = "CIVICFLOW_ALERT_CHANNEL"  # log, webhook or email
ALERT_CHANNELS = ("log", "webhook", "email")
ALERT_WEBHOOK_ENV = "CIVICFLOW_ALERT_WEBHOOK"  # the webhook's URL; else the connection below
ALERT_CONNECTION = "civicflow_alerts"  # http: host = the webhook's URL; password = bearer token
ALERT_EMAIL_ENV = "CIVICFLOW_ALERT_EMAIL"  # recipients, comma separated; SMTP is Airflow's own

# Published on purpose so the demo runs with no set-up; refused outside demo and test runs.
DEMO_PERSON_KEY = "civicflow-demo-person-key-do-not-use-in-production"
NON_PRODUCTION = frozenset({"demo", "test"})


class ConfigurationError(RuntimeError):
    """The pipeline is not configured to run safely; the message says what to set."""


@dataclass(frozen=True)
class FeedSettings:
    feed: str
    base_url: str
    auth: tuple[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # the connection's extra


def base_url(host: str | None, scheme: str | None = None, port: int | None = None) -> str:
    """A feed's base URL from an HTTP-provider style connection.

    The host may be a full base URL with scheme and path prefix, or a bare host
    with the scheme in ``schema`` (default http) and an optional port.
    """
    if not host:
        raise ConfigurationError("the connection has no host")
    host = host.strip()
    if "://" in host:
        url = host
    else:
        url = f"{scheme or 'http'}://{host}"
        if port:
            url += f":{port}"
    return url.rstrip("/") + "/"


def environment() -> str:
    return os.environ.get(ENVIRONMENT_ENV, "production").strip().lower() or "production"


def alert_channel() -> str:
    """How failures are reported: ``log`` (the default), ``webhook`` or ``email``."""
    channel = os.environ.get(ALERT_CHANNEL_ENV, "").strip().lower() or "log"
    if channel not in ALERT_CHANNELS:
        raise ConfigurationError(
            f"{ALERT_CHANNEL_ENV} is {channel!r}; it must be one of {', '.join(ALERT_CHANNELS)}"
        )
    return channel


def check_person_key(key: str | None, env: str) -> bytes:
    """The HMAC key for ``person_key``; refuses a missing key, and the demo key in production."""
    if not key:
        raise ConfigurationError(
            "no person-key secret: set the Airflow connection "
            f"'{PERSON_KEY_CONNECTION}' (its password is the key) or the environment variable "
            f"{PERSON_KEY_ENV}. Without it person_key cannot be computed and the run stops."
        )
    if key == DEMO_PERSON_KEY and env not in NON_PRODUCTION:
        raise ConfigurationError(
            f"the person-key secret is the published demo key, and {ENVIRONMENT_ENV} is "
            f"{env!r}: keys made with it can be recomputed by anyone. Set a secret key of your "
            f"own, or {ENVIRONMENT_ENV}=demo for a demonstration run."
        )
    if len(key) < 16:
        raise ConfigurationError("the person-key secret is shorter than 16 characters")
    return key.encode("utf-8")


def postgres_url(
    host: str, port: int | None, database: str, user: str | None, password: str | None
) -> str:
    """A libpq connection URL (what psql, psycopg and most BI tools accept)."""
    auth = ""
    if user:
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    return f"postgresql://{auth}{host}:{port or 5432}/{quote(database, safe='')}"
