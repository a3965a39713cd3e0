-- Positions known to the warehouse, for checking the positions a tally names.
select position_code, status
from core.dim_position
