"""
### health_ingest

Daily, incremental load of the **health feed** (community health centres'
service records) into `core.fact_service`.

- **Source:** connection `health_feed` (login = OAuth client_id, password =
  client_secret): `POST /oauth/token`, then
  `GET /api/v1/service-records?updated_since=&page=&page_size=`. An expired token
  (401 in the middle of paging) is renewed and the page asked again.
- **Incremental:** each run asks for the records changed since the watermark in
  `meta.feed_state`, which moves only when the batch commits; the first run
  loads everything (`initial_updated_since` in the connection extra narrows it).
  A record served twice keeps its latest `updated_at`; a later cancellation
  turns the row's status to `cancelled`.
- **Personal data:** the ID number becomes `person_key` (HMAC under the
  `civicflow_person_key` secret); names stay in staging; `details` (clinical
  measurements) never leaves `raw`.
- **Quarantine:** invalid ID numbers, unknown street or community spellings
  (resolved through the positions feed's `/divisions`, so `positions_ingest`
  must have run once), values outside the interface.
- **Owner:** civicflow data engineering; see `meta.load_audit` for each batch.
"""

from __future__ import annotations

from civicflow.airflow.ingest import ingest_dag
from civicflow.feeds.health import ENTITIES

dag = ingest_dag("health_ingest", ENTITIES, doc_md=__doc__, tags=["health"])
