# The Runway image: the Airflow 3 components and the jobs their tasks start (PySpark needs Java 17).
# Installs exactly what `make install` installs (requirements.txt, then this project without deps),
# plus the Postgres driver the compose stack's metadata and MLflow backend stores use.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 50000 --gid 0 runway

WORKDIR /opt/runway
COPY requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.txt psycopg2-binary==2.9.13
COPY jobs/ jobs/
COPY dags/ dags/
COPY plugins/ plugins/
COPY include/ include/
COPY scripts/ scripts/
RUN pip install --no-cache-dir --no-deps -e . \
    && mkdir -p /opt/runway/data /opt/airflow && chown -R runway:0 /opt/runway/data /opt/airflow

# The same variables scripts/runway_env.py sets for `make up` and `make demo`.
ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/runway/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/runway/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    RUNWAY_DATA_DIR=/opt/runway/data \
    PYSPARK_PYTHON=/usr/local/bin/python \
    MLFLOW_DISABLE_TELEMETRY=true \
    PYTHONUNBUFFERED=1

USER runway
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
