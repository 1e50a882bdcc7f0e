"""What every layer may use, importing nothing of Runway: the error taxonomy and its exit codes
(``errors``), the job result protocol (``results``), the date window (``window``) and the project's
folders (``paths``)."""
