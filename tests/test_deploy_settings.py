"""Deployment settings: production mode passes `check --deploy`, and refuses to start without its secrets.

Each case starts `manage.py` in a fresh process, since settings are read once, at start-up.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run manage.py with only `env` on top of the machine's environment, less any DJANGO_* variable."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base | {"VAR_DIR": str(tmp_path / "var")} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def production() -> dict[str, str]:
    return {
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "shop.example.com",
    }


def test_check_deploy_reports_no_warnings_in_production(tmp_path, production):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_reports_no_warnings_behind_a_tls_terminating_proxy(tmp_path, production):
    proxied = production | {"DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO", "RATE_LIMIT_PROXY_COUNT": "1"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=proxied, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_a_required_variable(tmp_path, production, missing):
    # given production mode with one required variable left out
    env = {k: v for k, v in production.items() if k != missing}
    # when the app starts
    result = manage("check", env=env, tmp_path=tmp_path)
    # then it stops with ImproperlyConfigured naming the variable
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_an_unknown_environment_name_is_refused(tmp_path):
    result = manage("check", env={"DJANGO_ENV": "prod"}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_ENV" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "notaurl"),
        ("DATABASE_URL", "postgres://user@db:notaport/shop"),
        ("LOG_LEVEL", "verbose"),
        ("RATE_LIMIT_API", "30/0m"),  # a period of 0: every request would divide by zero
        ("RATE_LIMIT_UPLOADS", "thirty"),
    ],
)
def test_a_bad_value_stops_start_up_naming_its_variable(tmp_path, name, value):
    result = manage("check", env={name: value}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr, result.stderr[-600:]


@pytest.mark.parametrize("value", ["30/m", "100/15m", "5/s", "1000/d", "10/1h"])
def test_a_rate_as_documented_is_accepted(tmp_path, value):
    assert manage("check", env={"RATE_LIMIT_PAGES": value}, tmp_path=tmp_path).returncode == 0


def test_production_takes_its_secret_from_the_environment_and_turns_debug_off(tmp_path, production):
    script = (
        "import json; from django.conf import settings as s; print(json.dumps({'key': s.SECRET_KEY, "
        "'debug': s.DEBUG, 'cookies': [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE], 'hsts': s.SECURE_HSTS_SECONDS}))"
    )
    result = manage("shell", "-c", script, env=production, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"key": production["DJANGO_SECRET_KEY"], "debug": False, "cookies": [True, True], "hsts": 31536000}


def test_development_starts_with_nothing_set(tmp_path):
    result = manage("check", env={}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr


def test_every_variable_the_settings_read_is_listed_in_env_example():
    settings_source = (ROOT / "fashion_search" / "settings.py").read_text()
    read = set(re.findall(r"""env_\w+\(\s*["']([A-Z0-9_]+)["']""", settings_source))
    listed = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
    assert read - listed == set()
