-- Close the current version of everyone the snapshot shows changed or does not show at all,
-- except people whose row was quarantined although their ID number was valid (held as they were).
-- Returns, per closed version, whether the person is still in the snapshot (a change, not a
-- departure).
update core.dim_person p
set valid_to = %(day)s, is_current = false, closed_by_load_id = %(load_id)s
where p.is_current
  and not exists (
    select 1
    from staging.civil_affairs__register s
    where s.load_id = %(load_id)s
      and s.snapshot_date = %(day)s
      and s.person_key = p.person_key
      and (s.gender, s.birth_year, s.street_code, s.community_code, s.categories, s.registry_status)
          is not distinct from
          (p.gender, p.birth_year, p.street_code, p.community_code, p.categories, p.registry_status)
  )
  and not exists (
    select 1
    from quarantine.rejected_row q
    where q.load_id = %(load_id)s
      and q.subject_key = p.person_key
      and q.record ->> 'snapshot_date' = %(day)s::text
  )
returning exists (
    select 1
    from staging.civil_affairs__register s
    where s.load_id = %(load_id)s and s.snapshot_date = %(day)s and s.person_key = p.person_key
) as still_registered
