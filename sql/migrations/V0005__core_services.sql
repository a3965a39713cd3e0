-- Services delivered to people, from every department: one row per service.
-- person_key is the only trace of who was served (HMAC of the ID number, see README).
create table core.fact_service (
    service_id text primary key,  -- '<source_feed>:<source_record_id>'
    source_feed text not null,
    source_record_id text not null,
    person_key text not null check (person_key ~ '^[0-9a-f]{64}$'),
    service_area text not null check (service_area in ('health', 'meals', 'day_care', 'volunteer_help')),
    service_type text not null,
    position_code text references core.dim_position (position_code),
    community_code text references core.dim_community (community_code),
    street_code text references core.dim_street (street_code),
    service_date date not null,
    service_time timestamptz,
    quantity numeric not null check (quantity > 0),
    unit text not null,
    amount_yuan numeric,
    status text not null check (status in ('completed', 'cancelled')),
    provider_code text,
    source_updated_at timestamptz,
    load_id uuid not null,
    updated_at timestamptz not null default now(),
    unique (source_feed, source_record_id)
);
create index on core.fact_service (person_key, service_date);
create index on core.fact_service (community_code, service_date);
create index on core.fact_service (position_code, service_date);
comment on table core.fact_service is
    'One row per service delivered to a person: health records, canteen meals, day-care visits, '
    'volunteer help naming a beneficiary. status cancelled rows stay, and never count in a mart. '
    'service_area is health, meals, day_care or volunteer_help.';
comment on column core.fact_service.person_key is
    'HMAC-SHA256 of the normalised resident ID number: the same person has the same key in '
    'every feed; the ID number itself never reaches core.';
comment on column core.fact_service.provider_code is
    'The serving institution''s own code where the feed gives one (a health centre).';
