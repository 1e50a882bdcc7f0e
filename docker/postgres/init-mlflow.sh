#!/bin/bash
# Creates the MLflow backend store next to the Airflow metadata DB (first start of the volume only).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-SQL
    CREATE USER ${MLFLOW_DB_USER} WITH PASSWORD '${MLFLOW_DB_PASSWORD}';
    CREATE DATABASE ${MLFLOW_DB_NAME} OWNER ${MLFLOW_DB_USER};
SQL
