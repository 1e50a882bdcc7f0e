"""Which version answers, and who decided: the registry (``registry``), the pure promotion rules
(``promotion``), the audit trail with its intent → change → settled helper (``audit``), the Champion
moves (``champion``: approve, promote, rollback), the route rule (``route_rules``), traffic and the
canary (``rollout``) and the pure gates of load tests and canaries (``gates``)."""
