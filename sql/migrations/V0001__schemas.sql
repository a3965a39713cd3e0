-- The six layers of the warehouse: what each holds and who may read it is in README.md.
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists quarantine;
create schema if not exists core;
create schema if not exists marts;
create schema if not exists meta;

comment on schema raw is 'Payloads as received from the feeds, with load id and sha256. Pipeline only.';
comment on schema staging is 'Typed, cleaned batches before they are merged. Pipeline only.';
comment on schema quarantine is 'Rejected rows with their original values and reasons. Pipeline and steward.';
comment on schema core is 'Conformed, pseudonymous dimensions and facts. Analysts and stewards.';
comment on schema marts is 'Analyst views and tables, one query per question. Analysts and stewards.';
comment on schema meta is 'Load audit, feed state and data-quality results. Analysts and stewards.';
