"""The tabular model's lifecycle: the estimator, its inputs and metrics (``estimator``), training
(``train``), the validation gate (``validation``), the comparison with the Champion
(``comparison``), scoring with a registered version (``scoring``, ``batch_scoring``,
``streaming_scoring``), monitoring (``monitoring``) and its retraining policy (``retraining``)."""
