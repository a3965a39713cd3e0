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

# The activity categories of the volunteer platform.
VOLUNTEER_CATEGORIES = (
    "理论宣讲",  # theory lectures
    "政策解读",  # policy explanations
    "文明引导",  # civility guidance
    "助老服务",  # help for the elderly
    "环保",  # environment
    "文体活动",  # culture and sport
    "法律咨询",  # legal advice
    "党课学习",  # party lessons
    "其他",  # other
)
