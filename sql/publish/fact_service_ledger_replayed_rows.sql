-- A steward's replay of ledger rows: each row joins the rows of its ledger version already
-- published, unless the warehouse holds a newer version of that ledger (rows of older versions
-- were deleted just before, in the same transaction). A row already there stays as it is.
insert into core.fact_service (
    service_id, source_feed, source_record_id, person_key, service_area, service_type,
    position_code, community_code, street_code, service_date, service_time, quantity, unit,
    amount_yuan, status, provider_code, source_updated_at, source_batch, source_version,
    load_id, updated_at
)
select
    s.service_id, s.source_feed, s.source_record_id, s.person_key, s.service_area,
    s.service_type, s.position_code, s.community_code, s.street_code, s.service_date,
    s.service_time, s.quantity, s.unit, s.amount_yuan, s.status, s.provider_code,
    s.source_updated_at, s.source_batch, s.source_version, s.load_id, now()
from staging.elderly_care__ledgers s
where s.load_id = %(load_id)s
  and not exists (
    select 1
    from core.fact_service f
    where f.source_feed = s.source_feed
      and f.source_batch = s.source_batch
      and f.source_version > s.source_version
  )
on conflict do nothing
