-- A steward's replay: a person whose version was opened by the snapshot itself from an older row
-- of the same file (the newer row was the one quarantined) takes the replayed row's values in
-- place; the replay passes only rows at least as new as the version (see replay_superseded).
update core.dim_person p
set gender = s.gender,
    birth_year = s.birth_year,
    street_code = s.street_code,
    community_code = s.community_code,
    categories = s.categories,
    registry_status = s.registry_status,
    source_updated_at = s.source_updated_at,
    load_id = s.load_id
from staging.civil_affairs__register s
where s.load_id = %(load_id)s
  and s.snapshot_date = %(day)s
  and p.person_key = s.person_key
  and p.is_current
  and p.valid_from = s.snapshot_date
  and (s.gender, s.birth_year, s.street_code, s.community_code, s.categories, s.registry_status)
      is distinct from
      (p.gender, p.birth_year, p.street_code, p.community_code, p.categories, p.registry_status)
