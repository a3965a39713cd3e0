-- Open a version for everyone in the snapshot without a current one (new, or just closed).
insert into core.dim_person (
    person_key, gender, birth_year, street_code, community_code, categories, registry_status,
    valid_from, valid_to, is_current, source_updated_at, load_id
)
select
    s.person_key, s.gender, s.birth_year, s.street_code, s.community_code, s.categories,
    s.registry_status, %(day)s, null, true, s.source_updated_at, s.load_id
from staging.civil_affairs__register s
where s.load_id = %(load_id)s
  and s.snapshot_date = %(day)s
  and not exists (
    select 1 from core.dim_person p where p.person_key = s.person_key and p.is_current
  )
