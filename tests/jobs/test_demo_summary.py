"""The demo's closing summary on a lifecycle that raised no alert (a model that never drifts is a
normal case): it crashed sorting an empty alerts table (KeyError 'window_end') and `make demo`
exited 1 after a good lifecycle, without its predictions, stage times and where to look."""

from __future__ import annotations

from demo_summary import print_summary  # scripts/demo_summary.py


def test_the_summary_of_a_lifecycle_without_alerts_is_printed_whole(trained, tmp_path, capsys):
    from tests.support import make_config

    trained_config, _, _ = trained
    config = make_config(tmp_path).model_copy(
        update={"mlflow": trained_config.mlflow}
    )  # no tables: no alerts
    print_summary(config, {"feature refresh": 1.5}, [], 1.5, tmp_path)
    printed = capsys.readouterr().out
    assert "Alerts (monitoring.alerts): none" in printed
    assert "Time per stage:" in printed and "feature refresh" in printed and "Where to look:" in printed
    assert f"Model versions of {config.registered_model_name}:" in printed
