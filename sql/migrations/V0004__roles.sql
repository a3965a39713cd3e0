-- Warehouse permissions as code: analysts read core, marts and meta; stewards also quarantine.
do $$
begin
    if not exists (select from pg_roles where rolname = 'analyst') then
        create role analyst nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'steward') then
        create role steward nologin;
    end if;
end
$$;

revoke all on schema raw, staging, quarantine from public;
grant usage on schema core, marts, meta to analyst, steward;
grant usage on schema quarantine to steward;
grant select on all tables in schema core, marts, meta to analyst, steward;
grant select on all tables in schema quarantine to steward;
alter default privileges in schema core, marts, meta grant select on tables to analyst, steward;
alter default privileges in schema quarantine grant select on tables to steward;
