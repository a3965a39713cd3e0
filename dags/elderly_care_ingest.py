"""
### elderly_care_ingest

Daily load of the **elderly-care ledgers** (canteen meals and day care, one
Excel workbook per street and month) into `core.fact_service`.

- **Source:** connection `elderly_care_feed` (header `X-Api-Token` = the
  connection's password): `GET /ledgers?month=YYYY-MM`, then
  `GET /ledgers/{file}` for each workbook due.
- **Which ledgers:** the months from `lookback_months` (connection extra,
  default 3) before the run's month to the run's month; per street and month
  the newest version, if published after the watermark in `meta.feed_state`
  (the latest `published_at` applied).
- **Replacement:** publishing a ledger version deletes every row of earlier
  versions of that street and month and inserts the new rows, in one
  transaction; an older version never replaces a newer one.
- **Workbooks:** sheets `长者饭堂` and `日间照料`; row 1 title, row 2 header,
  data until the `合计` row (a workbook without it is refused as truncated);
  Excel dates or text dates.
- **Rows:** meals are `service_area = meals` (quantity 1 meal, `amount_yuan` =
  补贴金额 + 个人支付, `service_type` such as `lunch_delivered`); day care is
  `day_care` (quantity in hours, `service_type` = 服务项目). A canteen named
  exactly as a registered position of the street is placed at that position.
- **Personal data:** the ID number becomes `person_key`; names stay in staging.
- **Quarantine:** invalid ID numbers, dates outside the ledger's month, values
  outside the interface, unknown street names.
- **Owner:** civicflow data engineering; see `meta.load_audit` for each batch.
"""

from __future__ import annotations

from civicflow.airflow.ingest import ingest_dag
from civicflow.feeds.elderly_care import ENTITIES

dag = ingest_dag("elderly_care_ingest", ENTITIES, doc_md=__doc__, tags=["elderly_care"])
