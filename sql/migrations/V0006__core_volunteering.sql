-- The volunteer platform: volunteers, activities, service hours.
create table core.dim_volunteer (
    volunteer_id text primary key,
    volunteer_key text check (volunteer_key ~ '^[0-9a-f]{64}$'),
    gender text check (gender in ('M', 'F')),
    birth_year integer,
    street_code text references core.dim_street (street_code),
    community_code text references core.dim_community (community_code),
    is_party_member boolean not null,
    registered_at timestamptz not null,
    source_updated_at timestamptz,
    load_id uuid not null,
    updated_at timestamptz not null default now()
);
comment on table core.dim_volunteer is
    'One row per volunteer of the platform. volunteer_key is the person_key of the volunteer '
    '(null when the platform has no mainland ID number); only the birth year is kept.';

create table core.fact_activity (
    activity_id text primary key,
    source_feed text not null,
    title text,
    category text not null,
    position_code text references core.dim_position (position_code),
    street_code text references core.dim_street (street_code),
    community_code text references core.dim_community (community_code),
    start_at timestamptz not null,
    end_at timestamptz not null,
    participants integer,
    organizer_uscc text,
    status text not null check (status in ('published', 'finished', 'cancelled')),
    source_updated_at timestamptz,
    load_id uuid not null,
    updated_at timestamptz not null default now()
);
create index on core.fact_activity (position_code, start_at);
comment on table core.fact_activity is
    'One row per volunteer activity. position_code comes from the platform, or from the venue '
    'address of a registered position; null for venues that are no position. participants is '
    'null: the platform does not report it (count the volunteers with hours instead).';

create table core.fact_volunteer_hours (
    record_id text primary key,
    activity_id text not null references core.fact_activity (activity_id),
    volunteer_id text not null references core.dim_volunteer (volunteer_id),
    volunteer_key text,
    position_code text references core.dim_position (position_code),
    street_code text references core.dim_street (street_code),
    service_date date not null,
    hours numeric not null check (hours > 0 and hours <= 24),
    status text not null check (status in ('confirmed', 'revoked')),
    source_updated_at timestamptz,
    load_id uuid not null,
    updated_at timestamptz not null default now()
);
create index on core.fact_volunteer_hours (street_code, service_date);
create index on core.fact_volunteer_hours (position_code, service_date);
comment on table core.fact_volunteer_hours is
    'One row per service-hour record, placed at the position, street and local date of its '
    'activity. revoked rows stay and never count.';
