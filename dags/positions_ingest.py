"""
### positions_ingest

Daily load of the **positions feed** (the organisation department's register of
the district's community service positions) into the warehouse.

- **Source:** connection `positions_feed`: `GET /divisions`, `GET /positions`,
  `GET /visits?date=YYYY-MM-DD` (coordinates in GCJ-02).
- **Each entity** (streets, communities, positions, visits) runs
  `extract` (land the payloads in `raw.payload`) → `validate` (parse, Great
  Expectations suite `expectations/positions.<entity>.json`, failing rows to
  `quarantine.rejected_row`) → `merge` (publish into core with the audit row and
  the feed state, in one transaction).
- **Writes:** `core.dim_street`, `core.dim_community`, `core.dim_position`
  (WGS 84), `core.fact_position_day`; `meta.load_audit`, `meta.feed_state`,
  `meta.dq_result`.
- **Visits** re-read the last `lookback_days` (connection extra, default 3), since
  a position may re-send a day with corrected numbers, and catch up days missed
  since the last watermark.
- **Owner:** civicflow data engineering. A failed batch names the feed, the
  entity, the load id and the reason; see `meta.load_audit`.
"""

from __future__ import annotations

from civicflow.airflow.ingest import ingest_dag
from civicflow.feeds.positions import ENTITIES

dag = ingest_dag("positions_ingest", ENTITIES, doc_md=__doc__, tags=["positions"])
