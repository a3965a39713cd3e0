"""The quarantine_replay DAG's task bodies: Airflow connections in, plain replay calls out.

Kept apart from the DAG file so that the file stays wiring, and so that tests can call the
tasks' work with a warehouse and no running Airflow. Configuration errors and impossible
replays fail at once, without retries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


@contextmanager
def _permanent_errors_fail_fast() -> Iterator[None]:
    from airflow.sdk.exceptions import AirflowFailException

    from civicflow.config import ConfigurationError
    from civicflow.replay import ReplayError

    try:
        yield
    except (ConfigurationError, ReplayError) as exc:
        raise AirflowFailException(str(exc)) from exc


def review_task(params: Mapping[str, Any]) -> dict[str, Any]:
    """The open rows by reason and a dry run's numbers, for the approval (JSON for XCom)."""
    from civicflow.airflow.connections import person_key, warehouse_url
    from civicflow.replay import review_and_preview

    with _permanent_errors_fail_fast():
        secret = person_key()  # refuse to start without a proper secret, whatever the feed
        return review_and_preview(
            warehouse_url(), params["feed"], params["entity"], params.get("reasons"), secret
        )


def replay_task(params: Mapping[str, Any], reviewed: Mapping[str, Any], run_id: str) -> dict:
    """Replay the rows of the batches reviewed (none quarantined since); the replay's summary."""
    from civicflow.airflow.connections import person_key, warehouse_url
    from civicflow.replay import replay

    with _permanent_errors_fail_fast():
        return replay(
            warehouse_url(),
            params["feed"],
            params["entity"],
            params.get("reasons"),
            dry_run=False,
            secret=person_key(),
            run_id=f"replay__{run_id}",
            loads=reviewed["loads"],
        ).as_dict()
