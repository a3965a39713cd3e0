# The Airflow image civicflow runs in: the official image of the pinned Airflow version,
# plus the pinned dependencies. docker-compose.yml builds it.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.lock /opt/civicflow/requirements.lock
RUN pip install --no-cache-dir -r /opt/civicflow/requirements.lock
