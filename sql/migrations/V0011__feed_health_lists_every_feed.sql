-- marts.feed_health lists every feed the warehouse has a batch of, even one none of whose
-- batches ever succeeded (V0008 built its rows from succeeded batches only, so a feed that
-- always failed was missing instead of failing). meta.load_audit is the register of feeds
-- here: a feed that never started a batch has nothing to be healthy or failing about yet.
-- Same columns, so the view is replaced in place and keeps its grants.
create or replace view marts.feed_health as
with latest as (  -- each entity's newest batch that got past extraction
    select distinct on (feed, entity) feed, entity, status, finished_at, source_rows,
           quarantined_rows
    from meta.load_audit
    where status in ('succeeded', 'rejected', 'failed')
    order by feed, entity, started_at desc
),
succeeded as (
    select distinct on (feed, entity) feed, entity, finished_at, source_rows, quarantined_rows
    from meta.load_audit
    where status = 'succeeded'
    order by feed, entity, started_at desc
),
published as (
    select s.feed, max(s.finished_at) as last_success_at,
           sum(s.source_rows) as rows_last_load,
           sum(s.quarantined_rows) as quarantined_last_load
    from succeeded s
    group by 1
),
feeds as (  -- every feed with a batch, whether or not one was ever published
    select f.feed, p.last_success_at, p.rows_last_load, p.quarantined_last_load
    from (select distinct feed from meta.load_audit) f
    left join published p using (feed)
)
select f.feed, f.last_success_at,
       (select max(watermark) from meta.feed_state fs where fs.feed = f.feed)
           as last_snapshot_or_watermark,
       f.rows_last_load, f.quarantined_last_load,
       f.quarantined_last_load::numeric / nullif(f.rows_last_load, 0) as quarantine_rate,
       round((extract(epoch from now() - f.last_success_at) / 3600)::numeric, 1)
           as hours_since_success,
       case
           when f.last_success_at is null then 'failing'
           when exists (select 1 from latest l where l.feed = f.feed and l.status <> 'succeeded')
               then 'failing'
           when now() - f.last_success_at > interval '26 hours' then 'stale'
           else 'ok'
       end as status
from feeds f;

comment on view marts.feed_health is
    'Grain: feed: every feed with a batch in meta.load_audit. From each entity''s newest '
    'succeeded batch: rows and quarantined rows; status failing when no batch of the feed ever '
    'succeeded or an entity''s newest batch failed or was rejected, stale after 26 hours without '
    'a success, else ok.';
comment on column marts.feed_health.last_success_at is
    'When its last batch was published; null when none ever was.';
comment on column marts.feed_health.status is
    'ok, stale (over 26 h) or failing (none ever succeeded, or the newest batch failed or was '
    'rejected).';

grant select on marts.feed_health to analyst, steward;
