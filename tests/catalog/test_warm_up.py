"""The web server's warm-up: models, heads and index load before the first request, once per process."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from catalog.services.search import search_by_image


@pytest.fixture
def wsgi_module(settings):
    settings.WARM_UP_ON_START = False  # importing the module must not warm up outside a test's database
    settings.INDEX_SEARCH_THREADS = 0  # nor change FAISS's threads for the tests that follow
    settings.WEB_GC_TUNE = False  # nor the garbage collector's thresholds
    import fashion_search.wsgi

    return fashion_search.wsgi


@pytest.mark.django_db
def test_warm_up_loads_backbone_heads_and_index_so_the_first_search_loads_nothing(wsgi_module, tagged_catalog, caplog):
    # given: a process that has warmed up
    with caplog.at_level(logging.INFO):
        wsgi_module.warm_up()
    assert any("warmed up (backbone, heads, index)" in r.getMessage() for r in caplog.records)
    caplog.clear()

    # when: the first real search comes
    with caplog.at_level(logging.INFO):
        result = search_by_image(image=Image.new("RGB", (300, 400), "navy"))

    # then: it finds items, and nothing was loaded while answering it
    assert result.hits
    assert not [r for r in caplog.records if r.getMessage().startswith(("loaded backbone", "loaded index"))]


def test_warm_up_without_a_database_logs_a_warning_and_lets_the_server_start(wsgi_module, monkeypatch, caplog):
    # given: a database that is not reachable (an unmigrated or stopped one)
    from django.db import OperationalError

    def unavailable(**_kwargs):
        raise OperationalError("no such table: recognition_recognizerversion")

    monkeypatch.setattr("catalog.services.search.search_by_image", unavailable)

    # when / then: no exception, one warning
    with caplog.at_level(logging.WARNING):
        wsgi_module.warm_up()
    assert any("warm-up failed" in r.getMessage() for r in caplog.records)


def test_a_web_process_searches_with_the_configured_faiss_threads(wsgi_module):
    import faiss

    previous = faiss.omp_get_max_threads()
    try:
        wsgi_module.search_threads_set(1)
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(previous)


def test_a_web_process_collects_young_garbage_less_often_after_freezing_start_up_objects(wsgi_module):
    import gc

    previous = gc.get_threshold()
    try:
        wsgi_module.garbage_collector_tune()
        assert gc.get_threshold()[0] >= 20_000
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)


@pytest.mark.django_db
def test_warm_up_warns_of_a_live_head_trained_on_another_backbone(wsgi_module, tmp_path, caplog):
    from dataclasses import replace

    from recognition.models import RecognizerVersion
    from recognition.recognizers import BUILTIN_ARTIFACTS_DIR, load_head, save_head

    # given: the shipped heads, all trained on the shipped backbone
    with caplog.at_level(logging.WARNING):
        wsgi_module.warm_up()
    assert not [r for r in caplog.records if "trained on" in r.getMessage()]
    caplog.clear()

    # and a pattern version made live before the backbone was replaced
    stale = replace(load_head(BUILTIN_ARTIFACTS_DIR / "pattern"), backbone_version="efficientnet-lite0:before")
    save_head(stale, tmp_path / "pattern")
    RecognizerVersion.objects.create(
        name="pattern",
        version=9,
        status=RecognizerVersion.Status.READY,
        directory=str(tmp_path / "pattern"),
        is_live=True,
    )

    # when the web process starts, then it names that head and why its predictions cannot be trusted
    with caplog.at_level(logging.WARNING):
        wsgi_module.warm_up()
    warnings = [r.getMessage() for r in caplog.records if "trained on" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "recognizer pattern (trained on efficientnet-lite0:before, running efficientnet-lite0:"
    )
    assert "meaningless" in warnings[0]
