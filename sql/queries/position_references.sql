-- Positions known to the warehouse: for checking the positions a record names, for placing an
-- activity by its venue address, and a canteen by its name.
select position_code, position_name, status, address, street_code, community_code
from core.dim_position
