-- The analysts' marts: one query each for the questions the warehouse answers.
-- Materialized views with a unique index, refreshed concurrently (civicflow.marts.refresh), so
-- readers never see a half-built mart; feed_health is a plain view, as it reads the clock.
-- "Completed" excludes cancelled services, revoked hours and cancelled activities, everywhere.

create materialized view marts.position_monthly as
with tallies as (
    select position_code, date_trunc('month', visit_date)::date as month,
           sum(activities_held) as activities, sum(participants) as participants,
           sum(visitors) as visitors
    from core.fact_position_day
    group by 1, 2
),
hours as (
    select h.position_code, date_trunc('month', h.service_date)::date as month,
           sum(h.hours) as volunteer_hours
    from core.fact_volunteer_hours h
    join core.fact_activity a using (activity_id)
    where h.status = 'confirmed' and a.status <> 'cancelled' and h.position_code is not null
    group by 1, 2
),
services as (
    select position_code, date_trunc('month', service_date)::date as month,
           count(*) as services_delivered, count(distinct person_key) as persons_served
    from core.fact_service
    where status = 'completed' and position_code is not null
    group by 1, 2
),
keys as (
    select position_code, month from tallies
    union select position_code, month from hours
    union select position_code, month from services
)
select k.month, k.position_code, p.level, p.street_code,
       coalesce(t.activities, 0)::bigint as activities,
       coalesce(t.participants, 0)::bigint as participants,
       coalesce(t.visitors, 0)::bigint as visitors,
       coalesce(h.volunteer_hours, 0)::numeric as volunteer_hours,
       coalesce(s.services_delivered, 0)::bigint as services_delivered,
       coalesce(s.persons_served, 0)::bigint as persons_served
from keys k
join core.dim_position p using (position_code)
left join tallies t using (position_code, month)
left join hours h using (position_code, month)
left join services s using (position_code, month);
create unique index on marts.position_monthly (month, position_code);

create materialized view marts.elderly_coverage as
with months as (
    select generate_series(
        date_trunc('month', min(service_date)), date_trunc('month', max(service_date)),
        interval '1 month'
    )::date as month
    from core.fact_service
),
registered as (  -- the version valid on the month's last day: 在册, aged 60+ in the month's year
    select m.month, p.person_key, p.community_code, p.street_code
    from months m
    join core.dim_person p
      on p.valid_from <= (m.month + interval '1 month - 1 day')::date
     and (p.valid_to is null or p.valid_to > (m.month + interval '1 month - 1 day')::date)
    where p.registry_status = '在册'
      and p.birth_year <= extract(year from m.month)::int - 60
),
served as (
    select date_trunc('month', service_date)::date as month, person_key,
           bool_or(service_area = 'meals') as meals,
           bool_or(service_area = 'day_care') as day_care,
           bool_or(service_area = 'health') as health,
           bool_or(service_area = 'volunteer_help') as volunteer_help
    from core.fact_service
    where status = 'completed'
    group by 1, 2
),
counted as (
    select r.month, r.community_code,
           count(*) as elderly_registered,
           count(s.person_key) as elderly_served_any,
           count(*) filter (where s.meals) as served_meals,
           count(*) filter (where s.day_care) as served_daycare,
           count(*) filter (where s.health) as served_health,
           count(*) filter (where s.volunteer_help) as served_volunteer
    from registered r
    left join served s using (month, person_key)
    group by 1, 2
)
select m.month, c.street_code, c.community_code,
       coalesce(n.elderly_registered, 0) as elderly_registered,
       coalesce(n.elderly_served_any, 0) as elderly_served_any,
       coalesce(n.served_meals, 0) as served_meals,
       coalesce(n.served_daycare, 0) as served_daycare,
       coalesce(n.served_health, 0) as served_health,
       coalesce(n.served_volunteer, 0) as served_volunteer,
       n.elderly_served_any::numeric / nullif(n.elderly_registered, 0) as coverage_rate
from months m
cross join core.dim_community c
left join counted n on n.month = m.month and n.community_code = c.community_code;
create unique index on marts.elderly_coverage (month, community_code);

create materialized view marts.unreached_vulnerable as
with newest as (
    select max(service_date) as day from core.fact_service where status = 'completed'
),
last_service as (
    select person_key, max(service_date) as last_service_date
    from core.fact_service
    where status = 'completed'
    group by 1
)
select p.person_key, p.community_code, p.categories, l.last_service_date,
       (n.day - l.last_service_date) as days_without_service
from core.dim_person p
cross join newest n
left join last_service l using (person_key)
where p.is_current
  and p.registry_status = '在册'
  and p.birth_year <= extract(year from coalesce(n.day, current_date))::int - 60
  and p.categories && array['独居老人', '高龄老人', '特困人员']
  and (l.last_service_date is null or l.last_service_date < n.day - 90);
create unique index on marts.unreached_vulnerable (person_key);

create function marts.great_circle_m(lon1 double precision, lat1 double precision,
                                     lon2 double precision, lat2 double precision)
returns double precision language sql immutable parallel safe as $$
    -- haversine on a sphere of the WGS 84 mean radius (6,371,008.8 m)
    select 2 * 6371008.8 * asin(sqrt(
        power(sin(radians(lat2 - lat1) / 2), 2)
        + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lon2 - lon1) / 2), 2)
    ))
$$;

create materialized view marts.fifteen_minute_circle as
with distances as (
    select c.community_code, p.position_code, p.services,
           marts.great_circle_m(c.longitude, c.latitude, p.longitude, p.latitude) as distance_m
    from core.dim_community c
    cross join core.dim_position p
    where p.status = 'open'
),
nearest as (
    select distinct on (community_code) community_code, position_code, distance_m
    from distances
    order by community_code, distance_m, position_code
),
within as (
    select d.community_code, count(distinct d.position_code) as positions,
           count(distinct s.area) as areas
    from distances d
    left join lateral unnest(d.services) as s (area) on true
    where d.distance_m <= 1000
    group by 1
)
select c.community_code, n.position_code as nearest_position_code,
       round(n.distance_m::numeric, 1) as distance_m,
       coalesce(w.positions, 0) as positions_within_1km,
       coalesce(w.areas, 0) as service_areas_within_1km
from core.dim_community c
left join nearest n using (community_code)
left join within w using (community_code);
create unique index on marts.fifteen_minute_circle (community_code);

create materialized view marts.volunteer_monthly as
with hours as (
    select h.street_code, date_trunc('month', h.service_date)::date as month,
           h.volunteer_id, h.hours
    from core.fact_volunteer_hours h
    join core.fact_activity a using (activity_id)
    where h.status = 'confirmed' and a.status <> 'cancelled' and h.street_code is not null
),
by_volunteers as (
    select h.month, h.street_code, count(distinct h.volunteer_id) as active_volunteers,
           sum(h.hours) as hours,
           count(distinct h.volunteer_id) filter (where v.is_party_member) as party_members
    from hours h
    join core.dim_volunteer v using (volunteer_id)
    group by 1, 2
),
by_activities as (
    select street_code, date_trunc('month', start_at at time zone 'Asia/Shanghai')::date as month,
           count(*) as activities
    from core.fact_activity
    where status <> 'cancelled' and street_code is not null
    group by 1, 2
),
keys as (
    select month, street_code from by_volunteers
    union select month, street_code from by_activities
)
select k.month, k.street_code,
       coalesce(v.active_volunteers, 0) as active_volunteers,
       coalesce(v.hours, 0) as hours,
       coalesce(a.activities, 0) as activities,
       v.party_members::numeric / nullif(v.active_volunteers, 0) as party_member_share
from keys k
left join by_volunteers v using (month, street_code)
left join by_activities a using (month, street_code);
create unique index on marts.volunteer_monthly (month, street_code);

create view marts.feed_health as
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
feeds as (
    select s.feed, max(s.finished_at) as last_success_at,
           sum(s.source_rows) as rows_last_load,
           sum(s.quarantined_rows) as quarantined_last_load
    from succeeded s
    group by 1
)
select f.feed, f.last_success_at,
       (select max(watermark) from meta.feed_state fs where fs.feed = f.feed)
           as last_snapshot_or_watermark,
       f.rows_last_load, f.quarantined_last_load,
       f.quarantined_last_load::numeric / nullif(f.rows_last_load, 0) as quarantine_rate,
       round((extract(epoch from now() - f.last_success_at) / 3600)::numeric, 1)
           as hours_since_success,
       case
           when exists (select 1 from latest l where l.feed = f.feed and l.status <> 'succeeded')
               then 'failing'
           when now() - f.last_success_at > interval '26 hours' then 'stale'
           else 'ok'
       end as status
from feeds f;

comment on materialized view marts.position_monthly is
    'Grain: month (first day, Asia/Shanghai) x position. activities, participants, visitors: sums '
    'of the daily tallies; volunteer_hours: confirmed hours of activities (not cancelled) held '
    'at the position that month; services_delivered: completed core.fact_service rows at the '
    'position; persons_served: their distinct person_keys.';
comment on materialized view marts.elderly_coverage is
    'Grain: month x community. elderly_registered: people whose person-history version valid on '
    'the month''s last day is 在册 in the community and aged 60+ in the month''s year; served_*: '
    'those of them with a completed service of that kind dated in the month; coverage_rate = '
    'elderly_served_any / elderly_registered, null when none are registered.';
comment on materialized view marts.unreached_vulnerable is
    'Grain: person. Currently 在册, aged 60+, 独居老人, 高龄老人 or 特困人员, whose last completed '
    'service (any feed) is more than 90 days before the newest service date in the warehouse, '
    'or who have none (last_service_date null).';
comment on materialized view marts.fifteen_minute_circle is
    'Grain: community. Great-circle distance (WGS 84, haversine) from the community centroid to '
    'the nearest open position; positions_within_1km and service_areas_within_1km count open '
    'positions and distinct service areas they offer within 1,000 m.';
comment on materialized view marts.volunteer_monthly is
    'Grain: month x street where the activity took place. active_volunteers: distinct volunteers '
    'with confirmed hours (activity not cancelled); hours: those hours; activities: activities '
    'not cancelled that started there that month; party_member_share: share of the active '
    'volunteers who are party members.';
comment on view marts.feed_health is
    'Grain: feed. From each entity''s newest succeeded batch: rows and quarantined rows; status '
    'failing when an entity''s newest batch failed or was rejected, stale after 26 hours without '
    'a success, else ok.';

grant select on all tables in schema marts to analyst, steward;
grant execute on function marts.great_circle_m to analyst, steward;
