"""What `make up` prints for the login, without starting the stack."""

from __future__ import annotations

import json

from stack import airflow_login  # scripts/stack.py (conftest puts scripts/ on the path)


def test_the_generated_password_is_printed(tmp_path):
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({"admin": "pw"})
    )
    assert airflow_login(tmp_path, {}) == "login: admin / pw"


def test_all_admins_means_no_login_instead_of_a_traceback(tmp_path):
    """`make up` with AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True died with FileNotFoundError."""
    said = airflow_login(tmp_path, {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"})
    assert said.startswith("no login") and "every user is an admin" in said
    assert "is missing" in airflow_login(tmp_path, {})


def test_every_user_of_the_stack_is_printed_with_its_password(tmp_path):
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({"admin": "a", "approver": "b", "viewer": "c"})
    )
    assert airflow_login(tmp_path, {}) == "login: admin / a (also approver / b; viewer / c)"
