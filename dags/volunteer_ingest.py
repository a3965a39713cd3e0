"""
### volunteer_ingest

Daily, incremental load of the **volunteer platform**: volunteers, activities and
service hours.

- **Source:** connection `volunteer_feed` (the password is sent as `X-Api-Key`):
  `GET /v2/volunteers`, `/v2/activities`, `/v2/service-hours`, each with
  `updated_since`, `cursor` and `limit` (connection extra `limit`, default 1000).
  A 429 waits for `Retry-After`; an expired cursor (410) starts the listing again
  from the last committed watermark, dropping what was read, so nothing loads twice.
- **Writes:** `core.dim_volunteer` (volunteer_key = person_key where the ID
  number is known), `core.fact_activity` (position by code, else by the venue
  address of a registered position; the organiser's credit code is checked),
  `core.fact_volunteer_hours` (placed at the position, street and date of the
  activity), and `core.fact_service` rows (`volunteer_help`) for hours that name
  the resident helped. Revoked hours stay, marked, and never count. Those come
  from the same service-hours listing: `volunteer_help` lands a copy of the pages
  `service_hours` listed in the same run when they start no later than its own
  watermark, instead of listing them again.
- **Order:** volunteers and activities before the hours that refer to them;
  `positions_ingest` must have loaded the divisions and positions.
- **Owner:** civicflow data engineering; see `meta.load_audit` for each batch.
"""

from __future__ import annotations

from civicflow.airflow.ingest import ingest_dag
from civicflow.feeds.volunteer import ENTITIES

dag = ingest_dag("volunteer_ingest", ENTITIES, doc_md=__doc__, tags=["volunteer"])
