"""civicflow's Airflow plugins, named for Airflow's plugin loader.

Airflow imports the files of the plugins folder itself; the ``civicflow`` package beside
them is on the path and kept out of that scan (``.airflowignore``), so its plugins are
listed here: the UI's Data quality page (``civicflow.airflow.dq_page``).
"""

from civicflow.airflow.dq_page import DataQualityPlugin

__all__ = ["DataQualityPlugin"]
