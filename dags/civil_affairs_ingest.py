"""
### civil_affairs_ingest

Daily load of the **civil-affairs register** (residents in the target groups)
into `core.dim_person`, as type-2 history.

- **Source:** connection `civil_affairs_feed` (HTTP Basic): `GET /exports/index.json`,
  then `GET /exports/{name}` for each snapshot due. Files are GB18030 CSV; each
  is checked against the index's sha256 and size, and a mismatch fails the run
  before anything is loaded.
- **Snapshots due:** those newer than the last applied (`meta.feed_state`) and
  not after the run's day, oldest first, at most `max_snapshots_per_run`
  (connection extra, default 7) per run: a missed day is caught up. The first
  run applies only the newest snapshot.
- **History:** a changed community, category set or status closes the current
  version (`valid_to` = the snapshot's date) and opens a new one; a person
  missing from a snapshot has their version closed; an unchanged snapshot
  writes nothing. A snapshot that would end more than `max_departure_share`
  (extra, default 0.2) of the registrations is refused as a likely truncated
  export.
- **Duplicates:** the same person twice in one file: the row with the latest
  更新时间 wins, the other is counted as a duplicate.
- **Personal data:** the ID number becomes `person_key`; only gender and birth
  year are kept; names, addresses and phones stay in staging and quarantine.
- **Quarantine:** invalid ID numbers, birth date or gender contradicting the ID
  number, unknown street or community spellings (the positions feed's
  `/divisions`; `positions_ingest` must have run once), unknown categories. A
  quarantined row with a valid ID number leaves that person's history as it was.
- **Owner:** civicflow data engineering; see `meta.load_audit` for each batch.
"""

from __future__ import annotations

from civicflow.airflow.ingest import ingest_dag
from civicflow.feeds.civil_affairs import ENTITIES

dag = ingest_dag("civil_affairs_ingest", ENTITIES, doc_md=__doc__, tags=["civil_affairs"])
