-- Upsert one staged batch into its core table; rows whose values did not change are left alone.
-- The target, staging table, columns and key come from the feed description. Returns one row:
-- how many rows were inserted and how many updated.
with merged as (
    insert into {target} ({columns}, load_id, updated_at)
    select {columns}, load_id, now()
    from {staging}
    where load_id = %(load_id)s
    on conflict ({key}) do update
    set {updates}, load_id = excluded.load_id, updated_at = excluded.updated_at
    where ({changed_target}) is distinct from ({changed_excluded}) {newer}
    returning (xmax = 0) as inserted
)
select count(*) filter (where inserted), count(*) filter (where not inserted) from merged
