-- Three marts, faster on a district-year (about 5 million rows; bench/run.py --only marts):
-- the same columns, types, rows, unique indexes, comments and grants as V0008 and V0009,
-- computed with less sorting and fewer passes over core.fact_service; the rows are checked
-- against V0008's definitions in tests/integration/test_marts_speed.py. position_monthly and
-- volunteer_monthly stay as V0008 made them: counting distinct persons by grouping first was
-- measured no faster (either way 2.4 million position-month-person rows are sorted once).

-- The person index also carries each service's area and status, so the marts that follow
-- people (elderly_coverage, unreached_vulnerable) read the index alone, already in person
-- order, and never the table. Same columns as before, so nothing that used it changes; an
-- entry is a few bytes wider, and a load still maintains the same number of indexes.
drop index core.fact_service_person_key_service_date_idx;
create index fact_service_person_key_service_date_idx
    on core.fact_service (person_key, service_date) include (service_area, status);

drop materialized view marts.elderly_coverage;
drop materialized view marts.unreached_vulnerable;
drop materialized view marts.fifteen_minute_circle;

-- Registered elderly are counted from the person history alone: versions are first grouped
-- by community and the span of months they count in, then spread over the months. Those
-- served come from one pass over the person index: each person's months with services, joined
-- to the person's version valid on that month's last day. A version valid on the last day of
-- month m is one with trunc(valid_from) <= m < trunc(valid_to) (months as first days), so no
-- person-month is ever multiplied by the twelve months.
create materialized view marts.elderly_coverage as
with months as (
    select generate_series(
        date_trunc('month', min(service_date)), date_trunc('month', max(service_date)),
        interval '1 month'
    )::date as month
    from core.fact_service
),
spans as (  -- 在册 versions by community and the months whose last day they cover, aged 60+
    select community_code,
           greatest(date_trunc('month', valid_from)::date, make_date(birth_year + 60, 1, 1))
               as first_month,
           date_trunc('month', valid_to)::date as end_month,  -- exclusive; null while current
           count(*) as versions
    from core.dim_person
    where registry_status = '在册'
    group by 1, 2, 3
),
registered as (
    select m.month, s.community_code, sum(s.versions)::bigint as elderly_registered
    from spans s
    join months m on m.month >= s.first_month and (s.end_month is null or m.month < s.end_month)
    group by 1, 2
),
served_months as (  -- each person's months with a completed service, and of which kinds
    select person_key, date_trunc('month', service_date)::date as month,
           bool_or(service_area = 'meals') as meals,
           bool_or(service_area = 'day_care') as day_care,
           bool_or(service_area = 'health') as health,
           bool_or(service_area = 'volunteer_help') as volunteer_help
    from core.fact_service
    where status = 'completed'
    group by 1, 2
),
served as (  -- counted where the person's version valid on the month's last day lives
    select s.month, p.community_code,
           count(*) as elderly_served_any,
           count(*) filter (where s.meals) as served_meals,
           count(*) filter (where s.day_care) as served_daycare,
           count(*) filter (where s.health) as served_health,
           count(*) filter (where s.volunteer_help) as served_volunteer
    from served_months s
    join core.dim_person p
      on p.person_key = s.person_key
     and s.month >= date_trunc('month', p.valid_from)::date
     and (p.valid_to is null or s.month < date_trunc('month', p.valid_to)::date)
    where p.registry_status = '在册'
      and p.birth_year <= extract(year from s.month)::int - 60
    group by 1, 2
)
select m.month, c.street_code, c.community_code,
       coalesce(r.elderly_registered, 0) as elderly_registered,
       coalesce(s.elderly_served_any, 0) as elderly_served_any,
       coalesce(s.served_meals, 0) as served_meals,
       coalesce(s.served_daycare, 0) as served_daycare,
       coalesce(s.served_health, 0) as served_health,
       coalesce(s.served_volunteer, 0) as served_volunteer,
       coalesce(s.elderly_served_any, 0)::numeric / nullif(r.elderly_registered, 0)
           as coverage_rate
from months m
cross join core.dim_community c
left join registered r on r.month = m.month and r.community_code = c.community_code
left join served s on s.month = m.month and s.community_code = c.community_code;
create unique index on marts.elderly_coverage (month, community_code);

-- No pass over the services at all: the newest completed date is read from the ends of the
-- position index (every position_code is a core.dim_position row; the rest are null), and
-- each vulnerable person's last completed service from the end of their run in the person
-- index. newest is materialized so that it is read once, whatever the planner's statistics
-- (right after a load, unanalysed tables once made it a subplan run for every person).
create materialized view marts.unreached_vulnerable as
with newest as materialized (
    select max(day) as day
    from (
        select (
            select max(s.service_date) from core.fact_service s
            where s.position_code = p.position_code and s.status = 'completed'
        ) as day
        from core.dim_position p
        union all
        select (  -- services at no position: ordered as the index is, so its end is read
            select s.service_date from core.fact_service s
            where s.position_code is null and s.status = 'completed'
            order by s.position_code desc nulls first, s.service_date desc
            limit 1
        )
    ) position_ends
),
vulnerable as (
    select person_key, community_code, categories, birth_year
    from core.dim_person
    where is_current
      and registry_status = '在册'
      and categories && array['独居老人', '高龄老人', '特困人员']
)
select v.person_key, v.community_code, v.categories, l.last_service_date,
       (n.day - l.last_service_date) as days_without_service
from vulnerable v
cross join newest n
left join lateral (
    select max(s.service_date) as last_service_date
    from core.fact_service s
    where s.person_key = v.person_key and s.status = 'completed'
) l on true
where v.birth_year <= extract(year from coalesce(n.day, current_date))::int - 60
  and (l.last_service_date is null or l.last_service_date < n.day - 90);
create unique index on marts.unreached_vulnerable (person_key);

-- Per community, the nearest open position and those within 1 km, looked up one community at
-- a time (a few hundred distances each) instead of sorting the whole cross join.
create materialized view marts.fifteen_minute_circle as
select c.community_code, n.position_code as nearest_position_code,
       round(n.distance_m::numeric, 1) as distance_m,
       coalesce(w.positions, 0) as positions_within_1km,
       coalesce(w.areas, 0) as service_areas_within_1km
from core.dim_community c
left join lateral (
    select p.position_code,
           marts.great_circle_m(c.longitude, c.latitude, p.longitude, p.latitude) as distance_m
    from core.dim_position p
    where p.status = 'open'
    order by distance_m, p.position_code
    limit 1
) n on true
left join lateral (
    select count(distinct p.position_code) as positions, count(distinct s.area) as areas
    from core.dim_position p
    left join lateral unnest(p.services) as s (area) on true
    where p.status = 'open'
      and marts.great_circle_m(c.longitude, c.latitude, p.longitude, p.latitude) <= 1000
) w on true;
create unique index on marts.fifteen_minute_circle (community_code);

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

comment on column marts.elderly_coverage.month is 'First day of the month.';
comment on column marts.elderly_coverage.street_code is 'Street of the community.';
comment on column marts.elderly_coverage.community_code is 'The community.';
comment on column marts.elderly_coverage.elderly_registered is 'Registered (在册) people aged 60+ living there on the month''s last day.';
comment on column marts.elderly_coverage.elderly_served_any is 'Of them, those with any completed service in the month.';
comment on column marts.elderly_coverage.served_meals is 'Of them, those with a canteen meal.';
comment on column marts.elderly_coverage.served_daycare is 'Of them, those with a day-care visit.';
comment on column marts.elderly_coverage.served_health is 'Of them, those with a health record.';
comment on column marts.elderly_coverage.served_volunteer is 'Of them, those a volunteer helped by name.';
comment on column marts.elderly_coverage.coverage_rate is 'elderly_served_any / elderly_registered; null when none are registered.';

comment on column marts.unreached_vulnerable.person_key is 'The person (pseudonymous).';
comment on column marts.unreached_vulnerable.community_code is 'Current community.';
comment on column marts.unreached_vulnerable.categories is 'Current target groups.';
comment on column marts.unreached_vulnerable.last_service_date is 'Date of the last completed service; null when none.';
comment on column marts.unreached_vulnerable.days_without_service is 'Days from it to the newest service date in the warehouse; null when none.';

comment on column marts.fifteen_minute_circle.community_code is 'The community.';
comment on column marts.fifteen_minute_circle.nearest_position_code is 'Nearest open position.';
comment on column marts.fifteen_minute_circle.distance_m is 'Great-circle distance to it, metres.';
comment on column marts.fifteen_minute_circle.positions_within_1km is 'Open positions within 1,000 m.';
comment on column marts.fifteen_minute_circle.service_areas_within_1km is 'Distinct service areas they offer.';

grant select on all tables in schema marts to analyst, steward;
