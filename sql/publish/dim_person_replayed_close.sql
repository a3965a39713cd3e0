-- A steward's replay of register rows quarantined in the snapshot last applied: close the current
-- version of each replayed person whose version began before that snapshot and differs from the
-- row. Nobody else is touched: a replay is not a snapshot, so it ends no one's registration.
update core.dim_person p
set valid_to = s.snapshot_date, is_current = false, closed_by_load_id = s.load_id
from staging.civil_affairs__register s
where s.load_id = %(load_id)s
  and s.snapshot_date = %(day)s
  and p.person_key = s.person_key
  and p.is_current
  and p.valid_from < s.snapshot_date
  and (s.gender, s.birth_year, s.street_code, s.community_code, s.categories, s.registry_status)
      is distinct from
      (p.gender, p.birth_year, p.street_code, p.community_code, p.categories, p.registry_status)
