-- Quarantine review and replay. Stewards keep their own aliases for the departments' spellings
-- (a positions reload replaces core.dim_street/dim_community.aliases, never these), and a replay
-- publishes quarantined rows that now pass as a batch of their own, leaving the bookkeeping to
-- show which rows moved. The aliases live in quarantine, the schema stewards already use: the
-- steward role may add and remove aliases there and change nothing else.

create table quarantine.street_alias (
    alias text not null check (alias = btrim(alias) and alias <> ''),
    street_code text not null references core.dim_street (street_code),
    added_by text not null default session_user,
    added_at timestamptz not null default now(),
    note text,
    primary key (alias, street_code)
);
comment on table quarantine.street_alias is
    'Spellings of a street that stewards add, used with the positions feed''s aliases when '
    'departments'' street names are resolved; a feed reload never changes them.';
comment on column quarantine.street_alias.alias is 'The spelling, as departments write it.';
comment on column quarantine.street_alias.street_code is 'The street it names (core.dim_street).';
comment on column quarantine.street_alias.added_by is 'The login that added it.';
comment on column quarantine.street_alias.added_at is 'When it was added.';
comment on column quarantine.street_alias.note is 'Why: the evidence the steward had.';

create table quarantine.community_alias (
    alias text not null check (alias = btrim(alias) and alias <> ''),
    community_code text not null references core.dim_community (community_code),
    added_by text not null default session_user,
    added_at timestamptz not null default now(),
    note text,
    primary key (alias, community_code)
);
comment on table quarantine.community_alias is
    'Spellings of a community that stewards add, used with the positions feed''s aliases when '
    'departments'' community names are resolved (within the community''s street); a feed reload '
    'never changes them. A spelling that names two communities of a street stays unresolved.';
comment on column quarantine.community_alias.alias is 'The spelling, as departments write it.';
comment on column quarantine.community_alias.community_code is
    'The community it names (core.dim_community; its street is the community''s).';
comment on column quarantine.community_alias.added_by is 'The login that added it.';
comment on column quarantine.community_alias.added_at is 'When it was added.';
comment on column quarantine.community_alias.note is 'Why: the evidence the steward had.';

grant select, insert, delete on quarantine.street_alias, quarantine.community_alias to steward;

-- A replay is a batch of its own in meta.load_audit: replay_of names the batches whose
-- quarantined rows it took, and its status is 'replayed' once published, so that feed health
-- (which reads fetched batches: succeeded, rejected, failed) is not refreshed by a replay.
alter table meta.load_audit add column replay_of uuid[];
alter table meta.load_audit drop constraint load_audit_status_check;
alter table meta.load_audit add constraint load_audit_status_check
    check (status in ('extracting', 'extracted', 'validated', 'succeeded', 'rejected', 'failed',
                      'replayed'));
comment on column meta.load_audit.replay_of is
    'For a steward''s replay of quarantined rows: the batches those rows were quarantined in '
    '(null for a batch fetched from a feed). A replay never moves a watermark.';
comment on column meta.load_audit.status is
    'extracting, extracted, validated, succeeded, rejected or failed; replayed for a published '
    'replay of quarantined rows.';

-- Each quarantined row is taken by at most one replay. The original row stays (the batch's
-- history is not rewritten) and says where it went: accepted into core, quarantined again in
-- the replay batch with its new reasons, or a duplicate there (a newer version of the record
-- won). A row still failing for the same reasons is left alone, open for the next replay.
alter table quarantine.rejected_row
    add column replayed_in uuid references meta.load_audit (load_id),
    add column replay_outcome text
        check (replay_outcome in ('accepted', 'quarantined', 'duplicate')),
    add column origin_load_id uuid references meta.load_audit (load_id),
    add constraint rejected_row_replayed_with_outcome
        check ((replayed_in is null) = (replay_outcome is null));
create index rejected_row_open on quarantine.rejected_row (feed, entity)
    where replayed_in is null;

comment on column quarantine.rejected_row.load_id is 'The batch that quarantined the row.';
comment on column quarantine.rejected_row.feed is 'Feed of the batch.';
comment on column quarantine.rejected_row.entity is 'Entity of the feed.';
comment on column quarantine.rejected_row.source_index is 'Position of the record in the batch.';
comment on column quarantine.rejected_row.record is
    'The record as received (clinical details excepted, which stay in raw).';
comment on column quarantine.rejected_row.reasons is 'Every reason the record was refused.';
comment on column quarantine.rejected_row.failed_expectations is
    'The expectations of the feed''s suite it failed.';
comment on column quarantine.rejected_row.quarantined_at is 'When it was quarantined.';
comment on column quarantine.rejected_row.subject_key is
    'person_key of the person the record is about, when its ID number was valid.';
comment on column quarantine.rejected_row.replayed_in is
    'The replay batch that took the row out of quarantine; null while it is open.';
comment on column quarantine.rejected_row.replay_outcome is
    'What that replay made of it: accepted (into core), quarantined (again, in the replay '
    'batch, with new reasons) or duplicate (a newer version of the record won).';
comment on column quarantine.rejected_row.origin_load_id is
    'For a row a replay quarantined again: the fetched batch the record first arrived in; null '
    'for a row of a fetched batch, which is its own origin.';

create view meta.quarantine_outcome as
select
    coalesce(q.origin_load_id, q.load_id) as load_id,
    q.feed,
    q.entity,
    count(*) filter (where q.origin_load_id is null) as quarantined_rows,
    count(*) filter (where q.replay_outcome = 'accepted') as accepted_later,
    count(*) filter (where q.replay_outcome = 'duplicate') as duplicate_later,
    count(*) filter (where q.replayed_in is null) as still_quarantined
from quarantine.rejected_row as q
group by 1, 2, 3;
comment on view meta.quarantine_outcome is
    'Grain: fetched batch with quarantined rows. What became of them after stewards'' replays, '
    'counts only: quarantined_rows = accepted_later + duplicate_later + still_quarantined. The '
    'batch''s own row in meta.load_audit keeps the numbers it was loaded with.';
comment on column meta.quarantine_outcome.load_id is 'The fetched batch (meta.load_audit).';
comment on column meta.quarantine_outcome.feed is 'Feed of the batch.';
comment on column meta.quarantine_outcome.entity is 'Entity of the feed.';
comment on column meta.quarantine_outcome.quarantined_rows is
    'Rows the batch quarantined (its quarantined_rows in meta.load_audit).';
comment on column meta.quarantine_outcome.accepted_later is
    'Of those, rows a replay later accepted into core.';
comment on column meta.quarantine_outcome.duplicate_later is
    'Of those, rows a replay found superseded by a newer version of the record.';
comment on column meta.quarantine_outcome.still_quarantined is
    'Of those, rows still in quarantine (in the batch, or quarantined again by a replay).';
grant select on meta.quarantine_outcome to analyst, steward;
