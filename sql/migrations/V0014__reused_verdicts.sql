-- A register snapshot is mostly the snapshot before it: a record identical to one the last
-- published batch staged keeps that row instead of being judged again (pipeline._Memo). The
-- audit says how many, and under which fingerprint of what judged them (suite, reference
-- data, person-key secret, code), so the next batch knows whether the rows still hold.
alter table meta.load_audit
    add column reused_rows integer,
    add column verdict_fingerprint text;

comment on column meta.load_audit.reused_rows is
    'Accepted records identical to ones the previous batch accepted, staged from its rows without being checked again (snapshot entities; null for others).';
comment on column meta.load_audit.verdict_fingerprint is
    'Digest of what judged the batch (suite, reference data, person-key secret, code): its staged rows are reused only under the same one.';
