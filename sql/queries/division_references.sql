-- Every code, name and alias of every street and community, for resolving departments' spellings.
select 'street' as kind, s.street_code as street_code, null as community_code, n.name
from core.dim_street as s
cross join lateral unnest(s.aliases || array[s.street_name, s.street_code]) as n (name)
union all
select 'community', c.street_code, c.community_code, n.name
from core.dim_community as c
cross join lateral unnest(c.aliases || array[c.community_name, c.community_code]) as n (name)
