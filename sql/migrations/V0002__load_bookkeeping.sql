-- Raw landing, quarantine, and the meta tables that audit every batch.
create table raw.payload (
    payload_id bigint generated always as identity primary key,
    load_id uuid not null,
    feed text not null,
    entity text not null,
    request_url text not null,
    fetched_at timestamptz not null default now(),
    content_type text,
    size_bytes integer not null,
    sha256 text not null,
    body bytea not null
);
create index payload_load_id on raw.payload (load_id);

create table quarantine.rejected_row (
    load_id uuid not null,
    feed text not null,
    entity text not null,
    source_index integer not null,
    record jsonb not null,
    reasons text[] not null,
    failed_expectations text[] not null default '{}',
    quarantined_at timestamptz not null default now(),
    primary key (load_id, source_index)
);
create index rejected_row_feed_entity on quarantine.rejected_row (feed, entity);
comment on table quarantine.rejected_row is
    'One row per rejected source record: the record as received, why it was refused, '
    'and which expectations it failed. Grain: load_id, source_index.';

create table meta.load_audit (
    load_id uuid primary key,
    feed text not null,
    entity text not null,
    run_id text,
    status text not null
        check (status in ('extracting', 'extracted', 'validated', 'succeeded', 'rejected', 'failed')),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    payloads integer not null default 0,
    http_attempts integer not null default 0,
    source_rows integer not null default 0,
    accepted_rows integer not null default 0,
    quarantined_rows integer not null default 0,
    duplicate_rows integer not null default 0,
    inserted_rows integer,
    updated_rows integer,
    unchanged_rows integer,
    extra_columns text[] not null default '{}',
    watermark text,
    error text,
    constraint load_audit_rows_add_up
        check (source_rows = accepted_rows + quarantined_rows + duplicate_rows)
);
create index load_audit_feed_entity on meta.load_audit (feed, entity, started_at);
comment on table meta.load_audit is
    'One row per batch (one entity of one feed in one run). '
    'source_rows = accepted_rows + quarantined_rows + duplicate_rows always holds; '
    'inserted/updated/unchanged split the accepted rows by their effect on core.';

create table meta.feed_state (
    feed text not null,
    entity text not null,
    watermark text,
    snapshot_sha256 text,
    load_id uuid not null references meta.load_audit (load_id),
    committed_at timestamptz not null default now(),
    primary key (feed, entity)
);
comment on table meta.feed_state is
    'Per feed and entity, the watermark or snapshot last committed; written in the same '
    'transaction as the data it describes.';

create table meta.dq_result (
    load_id uuid not null references meta.load_audit (load_id),
    suite text not null,
    expectation text not null,
    success boolean not null,
    unexpected_count integer,
    unexpected_percent double precision,
    evaluated_at timestamptz not null default now(),
    primary key (load_id, expectation)
);
comment on table meta.dq_result is
    'One row per Great Expectations expectation per batch: whether it passed, and how many '
    'rows failed it.';
