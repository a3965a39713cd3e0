-- Positions known to the warehouse: for checking the positions a record names, and for
-- placing an activity by its venue address.
select position_code, status, address, street_code, community_code
from core.dim_position
