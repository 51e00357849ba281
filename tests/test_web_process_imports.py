"""A web process on ONNX Runtime never imports torch: importing it costs ~650 MB of memory per process.

Each case starts a fresh interpreter, since `sys.modules` of the test process already holds torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from recognition.backbone import BackboneConfig, backbone_version
from recognition.backbone_onnx import export_ensure, export_path

ROOT = Path(__file__).resolve().parent.parent

# Starts like a gunicorn worker (the WSGI module, without its warm-up), then serves one recognize and one
# search through the test client; prints whether torch was imported after each step.
WEB_PROCESS = """
import io, json, os, resource, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "fashion_search.settings"
import django
django.setup()
import catalog.services.search, fashion_search.urls, recognition.services
from fashion_search.wsgi import application
after_import = "torch" in sys.modules
statuses = []
if "--serve" in sys.argv:
    from django.core.management import call_command
    from django.test import Client
    from PIL import Image
    call_command("migrate", verbosity=0)
    for path in ("/api/v1/recognize?model=type", "/api/v1/search"):
        upload = io.BytesIO()
        Image.new("RGB", (300, 400), "red").save(upload, format="JPEG")
        upload.seek(0)
        upload.name = "red.jpg"
        statuses.append(Client().post(path, {"image": upload}).status_code)
print(json.dumps({
    "after_import": after_import,
    "after_requests": "torch" in sys.modules,
    "statuses": statuses,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    """A model cache holding the backbone's ONNX export, as a web host has after its first start."""
    cache = tmp_path_factory.mktemp("model-cache")
    tuned = settings.BACKBONE_TUNED_WEIGHTS
    config = BackboneConfig(runtime="onnx", tuned_weights=tuned if tuned.exists() else None, cache_dir=cache)
    target = export_path(cache, backbone_version(config))
    # Reuse the development cache's export when it has one: exporting takes seconds of CPU.
    dev_export = export_path(settings.MODEL_CACHE_DIR, backbone_version(config))
    if dev_export.exists():
        shutil.copy(dev_export, target)
    else:
        export_ensure(config, cache)
    return cache


def _web_process(*args: str, cache: Path, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | {
        "VAR_DIR": str(tmp_path / "var"),
        "MODEL_CACHE_DIR": str(cache),
        "RECOGNITION_RUNTIME": "onnx",
        "WARM_UP_ON_START": "0",
    }
    env.pop("DATABASE_URL", None)  # a throw-away SQLite database under VAR_DIR
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_web_application_does_not_import_torch(model_cache, tmp_path):
    # when: a fresh process sets up Django and imports the URLconf, the WSGI application and the search services
    report = _web_process(cache=model_cache, tmp_path=tmp_path)

    # then: torch stayed out (recognition.training, which the admin imports, loads it only to train)
    assert report["after_import"] is False


def test_serving_a_recognize_and_a_search_on_onnx_does_not_import_torch(model_cache, tmp_path):
    # given: a web process on ONNX Runtime with the backbone's export already cached
    # when: it answers one recognize and one search (an empty catalog: no index yet)
    report = _web_process("--serve", cache=model_cache, tmp_path=tmp_path)

    # then: both were answered by the ONNX backbone and torch was never imported
    assert report["statuses"][0] == 200
    assert report["statuses"][1] in (200, 503), report
    assert report["after_requests"] is False
