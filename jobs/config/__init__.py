"""An environment's typed configuration: ``loader`` (YAML layers, ``${VAR}`` expansion, caching,
isolation between environments) and one schema module per domain — ``base`` (environments,
pipelines, the strict model), ``use_case``, ``platform`` (storage, MLflow, compute, schedules),
``release``, ``monitoring``, ``assistant`` — composed by ``env.EnvConfig``. ``targets`` names what a
lifecycle step acts on (one registered model); ``traffic`` is the routing spec the serving config
and the registry's ``runway.traffic`` tag hold.

Imported when Airflow parses DAG files: PyYAML and pydantic only."""
