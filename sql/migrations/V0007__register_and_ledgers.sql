-- The civil-affairs register as person history, and what file-based feeds need around it.

-- What a payload was, beyond its URL: a snapshot's date and checksum from an export index,
-- a ledger's street, month and version.
alter table raw.payload add column meta jsonb not null default '{}';

-- The person a rejected row is about, when its ID number was valid (person_key): a register
-- row quarantined for, say, an unknown community spelling must not end that person's
-- registration as if they had left the register.
alter table quarantine.rejected_row add column subject_key text;

create table core.dim_person (
    person_key text not null check (person_key ~ '^[0-9a-f]{64}$'),
    gender text check (gender in ('M', 'F')),
    birth_year integer not null,
    street_code text references core.dim_street (street_code),
    community_code text references core.dim_community (community_code),
    categories text[] not null default '{}',
    registry_status text not null check (registry_status in ('在册', '迁出', '死亡')),
    valid_from date not null,
    valid_to date,
    is_current boolean not null,
    source_updated_at timestamptz,
    load_id uuid not null,
    closed_by_load_id uuid,
    primary key (person_key, valid_from),
    check (valid_to is null or valid_to > valid_from),
    check (is_current = (valid_to is null))
);
create unique index dim_person_current on core.dim_person (person_key) where is_current;
create index on core.dim_person (community_code, valid_from);
comment on table core.dim_person is
    'History of each person in the civil-affairs register, one row per version (type 2). '
    'valid_from: snapshot_date of the first snapshot showing the version; valid_to: '
    'snapshot_date of the snapshot that ended it (exclusive), null while current. '
    'Only the birth year is kept. categories are in the register''s fixed order.';
comment on column core.dim_person.registry_status is
    '在册 registered, 迁出 moved away, 死亡 deceased; a person missing from a newer snapshot '
    'has their current version closed without a new one.';

-- Ledger feeds replace whole files: the file a row came from and its version.
alter table core.fact_service add column source_batch text;
alter table core.fact_service add column source_version integer;
create index on core.fact_service (source_feed, source_batch) where source_batch is not null;
comment on column core.fact_service.source_batch is
    'For ledger feeds, the ledger a row belongs to (elderly care: month and street code); '
    'a newer version of a ledger replaces all its rows.';
