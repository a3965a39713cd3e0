#!/usr/bin/env bash
# First start of the compose PostgreSQL: separate databases (and owners) for Airflow's
# metadata and for the civicflow warehouse.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
create role airflow login password '${AIRFLOW_DB_PASSWORD}';
create database airflow owner airflow;
create role civicflow login createrole password '${CIVICFLOW_DB_PASSWORD}';
create database civicflow owner civicflow;
SQL
