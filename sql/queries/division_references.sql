-- Every code, name and alias of every street and community, for resolving departments' spellings:
-- the positions feed's own, and those stewards added (quarantine.*_alias, kept across reloads).
select 'street' as kind, s.street_code as street_code, null as community_code, n.name
from core.dim_street as s
cross join lateral unnest(s.aliases || array[s.street_name, s.street_code]) as n (name)
union all
select 'street', a.street_code, null, a.alias
from quarantine.street_alias as a
union all
select 'community', c.street_code, c.community_code, n.name
from core.dim_community as c
cross join lateral unnest(c.aliases || array[c.community_name, c.community_code]) as n (name)
union all
select 'community', c.street_code, c.community_code, a.alias
from quarantine.community_alias as a
inner join core.dim_community as c on c.community_code = a.community_code
