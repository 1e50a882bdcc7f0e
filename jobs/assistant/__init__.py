"""The retrieval-augmented assistant's lifecycle: knowledge (``knowledge``, ``knowledge_refresh``),
the chain and its pyfunc (``chain``), building a candidate (``build``), the evaluation gate
(``gate`` pure, ``evaluation`` the run) and monitoring (``monitoring_policy`` pure, ``monitoring``
the run). Its endpoint is ``jobs.serving.assistant_endpoint``."""
