-- Quarantined rows open for a steward's replay: not replayed yet, and in a published batch (a
-- rejected or failed batch published nothing, and its feed fetches those records again). Of a
-- feed, and where given of an entity, of these batches, and with a reason beginning with one of
-- these ("unknown community" selects "unknown community '旧南海居委会' in street 440104001").
-- Oldest record first, so that of two versions of a record the newer wins.
select
    q.load_id,
    q.entity,
    q.source_index,
    q.record,
    q.reasons,
    q.failed_expectations,
    o.load_id as origin_load_id,
    o.started_at as origin_started_at
from quarantine.rejected_row as q
inner join meta.load_audit as a on a.load_id = q.load_id
inner join meta.load_audit as o on o.load_id = coalesce(q.origin_load_id, q.load_id)
where q.feed = %(feed)s
  and (%(entity)s::text is null or q.entity = %(entity)s)
  and q.replayed_in is null
  and a.status in ('succeeded', 'replayed')
  and (%(loads)s::uuid[] is null or q.load_id = any(%(loads)s::uuid[]))
  and (
    %(reasons)s::text[] is null
    or exists (
        select 1
        from unnest(q.reasons) as r (reason)
        cross join unnest(%(reasons)s::text[]) as w (prefix)
        where starts_with(r.reason, w.prefix)
    )
  )
order by o.started_at, o.load_id, q.load_id, q.source_index
