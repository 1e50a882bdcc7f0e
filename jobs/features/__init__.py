"""Data to features: the bronze → silver → gold refresh behind quality gates (``refresh``, with
the transforms of ``pipeline`` and the suites of ``quality``), reading gold for the lifecycle
(``gold``), seed data (``seed``) and a use case's folder and checks (``use_case_files``,
``use_case_check``)."""
