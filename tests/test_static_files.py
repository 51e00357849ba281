"""The app serves its own static files under gunicorn (DEBUG off), once `collectstatic` has gathered them."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client


@pytest.mark.parametrize(
    "path",
    [
        "/static/css/site.css",  # the shopper page's look
        "/static/js/search.js",  # shrinking photos before upload, results in place
        "/static/admin/css/base.css",  # the merchants' admin
        "/static/ninja/swagger-ui-bundle.js",  # the API docs, offline
    ],
)
def test_collected_static_files_are_served_with_debug_off(settings, tmp_path, path):
    # given: a production-like process (DEBUG off, so Django serves no static files itself) after
    # `make serve`'s collectstatic
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)

    # when / then
    response = Client().get(path)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)
