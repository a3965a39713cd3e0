"""Airflow connections turned into civicflow's plain settings; the only place that reads them."""

from __future__ import annotations

import os

from civicflow.config import (
    FEED_CONNECTIONS,
    PERSON_KEY_CONNECTION,
    PERSON_KEY_ENV,
    WAREHOUSE_CONNECTION,
    ConfigurationError,
    FeedSettings,
    base_url,
    check_person_key,
    environment,
    postgres_url,
)


def connection(conn_id: str):
    """An Airflow connection; a missing one is a ConfigurationError saying how to add it."""
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow raises its own not-found types, which vary by version
        if "isn't defined" in str(exc) or "not found" in str(exc).lower():
            raise ConfigurationError(
                f"Airflow connection '{conn_id}' is not defined: add it in the UI, with "
                f"`airflow connections add`, or as AIRFLOW_CONN_{conn_id.upper()}"
            ) from exc
        raise


def feed_settings(feed: str) -> FeedSettings:
    conn_id = FEED_CONNECTIONS[feed]
    conn = connection(conn_id)
    extra = conn.extra_dejson or {}
    # How login and password are presented (Basic, a header, OAuth) is the client's business.
    auth = (conn.login or "", conn.password or "") if conn.login or conn.password else None
    return FeedSettings(
        feed=feed,
        base_url=base_url(conn.host, conn.schema, conn.port),
        auth=auth,
        options={k: v for k, v in extra.items() if k != "headers"},
        headers=extra.get("headers") or {},
    )


def warehouse_url() -> str:
    conn = connection(WAREHOUSE_CONNECTION)
    if not conn.host:
        raise ConfigurationError(f"Airflow connection '{WAREHOUSE_CONNECTION}' has no host")
    return postgres_url(conn.host, conn.port, conn.schema or "civicflow", conn.login, conn.password)


def person_key() -> bytes:
    """The HMAC secret for person_key, from its connection or the environment; checked."""
    key = os.environ.get(PERSON_KEY_ENV)
    if not key:
        try:
            key = connection(PERSON_KEY_CONNECTION).password
        except ConfigurationError:
            key = None
    return check_person_key(key, environment())
