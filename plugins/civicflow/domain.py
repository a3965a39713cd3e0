"""Facts of the service network that every part of civicflow shares."""

from __future__ import annotations

# The four levels of service positions, as the positions feed names them.
POSITION_LEVELS = ("district", "street", "community", "public_space")

# The eight functional service areas a position may offer.
SERVICE_AREAS = (
    "综合接待",  # reception
    "政务服务",  # government services
    "党群议事",  # community deliberation
    "红色教育",  # civic education
    "党群活动",  # activities
    "群团服务",  # mass-organisation services
    "人才服务",  # talent services
    "便民服务",  # convenience services
)
