-- Volunteers known to the warehouse, with their pseudonymous key (null without an ID number).
select volunteer_id, volunteer_key
from core.dim_volunteer
