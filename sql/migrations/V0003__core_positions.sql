-- The service network: streets, communities, positions and their daily tallies.
create table core.dim_street (
    street_code text primary key,
    street_name text not null,
    aliases text[] not null default '{}',
    district_code text not null,
    load_id uuid not null,
    updated_at timestamptz not null default now()
);
comment on table core.dim_street is
    'One row per street (街道) of the district, from the positions feed /divisions. '
    'aliases are the other spellings departments use for it.';

create table core.dim_community (
    community_code text primary key,
    community_name text not null,
    street_code text not null references core.dim_street (street_code),
    longitude double precision not null,
    latitude double precision not null,
    aliases text[] not null default '{}',
    load_id uuid not null,
    updated_at timestamptz not null default now()
);
comment on table core.dim_community is
    'One row per community (社区, residents'' committee). longitude/latitude: the centroid in '
    'WGS 84, converted from the feed''s GCJ-02.';

create table core.dim_position (
    position_code text primary key,
    position_name text not null,
    level text not null check (level in ('district', 'street', 'community', 'public_space')),
    street_code text references core.dim_street (street_code),
    community_code text references core.dim_community (community_code),
    address text,
    longitude double precision not null,
    latitude double precision not null,
    services text[] not null default '{}',
    rooms text[] not null default '{}',
    integrated_platforms text[] not null default '{}',
    opening_hours text,
    opened_on date,
    status text not null check (status in ('open', 'closed')),
    load_id uuid not null,
    updated_at timestamptz not null default now()
);
comment on table core.dim_position is
    'One row per service position (党群服务阵地) at four levels. longitude/latitude in WGS 84, '
    'converted from the feed''s GCJ-02. services: the service areas it offers.';

create table core.fact_position_day (
    position_code text not null references core.dim_position (position_code),
    visit_date date not null,
    visitors integer not null,
    activities_held integer not null,
    participants integer not null,
    load_id uuid not null,
    updated_at timestamptz not null default now(),
    primary key (position_code, visit_date)
);
comment on table core.fact_position_day is
    'One row per position and day: the front-desk tally. A re-sent day replaces the numbers.';
