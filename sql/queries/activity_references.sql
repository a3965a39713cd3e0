-- Activities known to the warehouse: where and when each was held (local date).
select
    activity_id,
    category,
    position_code,
    street_code,
    community_code,
    (start_at at time zone 'Asia/Shanghai')::date as service_date
from core.fact_activity
