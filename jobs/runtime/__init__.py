"""What jobs run on: the CLI and its exit codes (``cli``), Spark sessions, local or Spark Connect
(``spark_session``), MLflow pointed at an environment (``mlflow_setup``), who acts
(``identity``), and the warm fork server that starts job processes (``fork_server``)."""
