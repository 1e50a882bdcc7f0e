"""Online serving: a REST endpoint that follows the Champion alias (``python -m jobs.serve``).

- ``protocol``: MLflow's scoring protocol (``dataframe_split``, ``dataframe_records``, ``inputs``;
  JSON and CSV) parsed into rows, with 400s that name the column or the malformed body;
- ``follower``: the served version — the alias is polled, a new version is loaded, checked against
  the previous one's inputs, warmed up and swapped in atomically (or refused);
- ``batcher``: dynamic micro-batching of concurrent requests into one ``predict``;
- ``inference_log``: every request's rows to a write-ahead log on the request path (one ``write``),
  committed to ``<catalog>.ml.inference_log`` by a background flusher, once per segment;
- ``app``: the FastAPI app (``/invocations``, ``/ping``, ``/health``, ``/version``, ``/metrics``,
  ``/admin/reload``) tying them together.

Airflow-free, like every job: the stack, docker-compose and tests start it as a process.
"""
