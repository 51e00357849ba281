"""The ONNX Runtime backbone against eager PyTorch (the oracle), on real demo photos.

Both runtimes load for real: a real export, a real ONNX Runtime session. Only the GPU is mocked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recognition.backbone import (
    Backbone,
    BackboneConfig,
    backbone_version,
    cuda_available,
    get_backbone,
    load_backbone,
    resolve_runtime,
    save_tuned_weights,
)
from recognition.backbone_onnx import OnnxBackbone, export_ensure, export_path
from recognition.errors import ModelNotReady
from recognition.images import decode_image, model_draft_size
from tests.conftest import demo_photos

ROOT = Path(__file__).resolve().parents[2]
MIN_COSINE = 0.999


def _decoded(paths: list[Path], size: int) -> list:
    draft = model_draft_size(size)
    return [decode_image(p.read_bytes(), max_bytes=10**8, max_pixels=10**8, draft_size=draft) for p in paths]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def onnx_backbone(cache_dir: Path) -> OnnxBackbone:
    return OnnxBackbone(BackboneConfig(runtime="onnx", cache_dir=cache_dir))


def test_onnx_embeddings_agree_with_eager_torch_on_demo_photos(onnx_backbone):
    # given: one real photo of each type, decoded as the site decodes uploads
    torch_backbone = get_backbone(BackboneConfig(device="cpu", runtime="torch"))
    images = _decoded(demo_photos(per_type=1), onnx_backbone.input_size)

    # when: both runtimes embed them, as a batch and one by one
    expected = torch_backbone.embed(images)
    batched = onnx_backbone.embed(images)
    single = np.vstack([onnx_backbone.embed([image]) for image in images])

    # then: every embedding agrees with torch's, and both runtimes carry the same version
    assert batched.shape == expected.shape == (len(images), 1280)
    assert np.min(np.sum(batched * expected, axis=1)) >= MIN_COSINE
    assert np.min(np.sum(single * expected, axis=1)) >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert onnx_backbone.version == torch_backbone.version


def test_the_export_is_written_once_and_reused(onnx_backbone, cache_dir):
    # given: the export written by the first load
    path = export_path(cache_dir, onnx_backbone.version)
    written = path.stat().st_mtime_ns

    # when: another process-wide load of the same version happens
    again = OnnxBackbone(BackboneConfig(runtime="onnx", cache_dir=cache_dir))

    # then: the same file is used, not exported again, and nothing temporary is left behind
    assert again.version == onnx_backbone.version
    assert path.stat().st_mtime_ns == written
    assert [p.name for p in cache_dir.iterdir() if p.suffix == ".onnx"] == [path.name]
    assert not list(cache_dir.glob("*.tmp"))


def test_fine_tuned_weights_get_an_export_of_their_own(onnx_backbone, cache_dir, tmp_path):
    # given: a fine-tuned weights file (the ImageNet weights saved as float16, a different file)
    tuned = tmp_path / "tuned.pt"
    save_tuned_weights(Backbone(BackboneConfig(device="cpu")), tuned)
    config = BackboneConfig(runtime="onnx", cache_dir=cache_dir, tuned_weights=tuned)

    # when: the onnx runtime loads it
    backbone = OnnxBackbone(config)

    # then: it has the tuned version and its own file, and still agrees with torch on the same weights
    assert backbone.version == backbone_version(config) != onnx_backbone.version
    assert backbone.version.startswith("efficientnet-lite0:tuned-")
    assert export_path(cache_dir, backbone.version).exists()
    images = _decoded(demo_photos(per_type=1)[:3], backbone.input_size)
    reference = Backbone(BackboneConfig(device="cpu", tuned_weights=tuned)).embed(images)
    assert np.min(np.sum(backbone.embed(images) * reference, axis=1)) >= MIN_COSINE


def test_processes_starting_together_export_once(tmp_path):
    # given: an empty cache shared by two processes that start at the same time
    script = (
        "import sys; from pathlib import Path; from recognition.backbone import BackboneConfig;"
        "from recognition.backbone_onnx import OnnxBackbone;"
        "b = OnnxBackbone(BackboneConfig(runtime='onnx', cache_dir=Path(sys.argv[1]), threads=1));"
        "print(b.version)"
    )

    # when: both load the onnx backbone
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240)[0].strip().splitlines()[-1] for p in processes]

    # then: both succeed with the same version, from one export file, with no temporary file left
    assert [p.returncode for p in processes] == [0, 0]
    assert outputs[0] == outputs[1]
    assert [p.name for p in tmp_path.glob("*.onnx")] == [export_path(tmp_path, outputs[0]).name]
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_export_for_another_version_is_refused(cache_dir, onnx_backbone, tmp_path):
    # given: a cache whose file for this version holds another backbone's export (a copied file)
    other = tmp_path / "cache"
    other.mkdir()
    tuned = tmp_path / "tuned.pt"
    save_tuned_weights(Backbone(BackboneConfig(device="cpu")), tuned)
    config = BackboneConfig(runtime="onnx", cache_dir=other, tuned_weights=tuned)
    export_path(other, backbone_version(config)).write_bytes(
        export_path(cache_dir, onnx_backbone.version).read_bytes()
    )

    # when / then: loading it is refused instead of giving embeddings of the wrong model
    with pytest.raises(ModelNotReady, match="does not hold backbone"):
        OnnxBackbone(config)


def test_auto_runtime_is_onnx_on_cpu_and_torch_on_a_gpu(monkeypatch, tmp_path):
    import recognition.backbone as backbone_module

    monkeypatch.setattr(backbone_module, "cuda_available", lambda: False)
    assert resolve_runtime(BackboneConfig(runtime="auto", cache_dir=tmp_path)) == "onnx"
    assert resolve_runtime(BackboneConfig(runtime="auto", cache_dir=None)) == "torch"
    assert resolve_runtime(BackboneConfig(runtime="auto", device="cuda", cache_dir=tmp_path)) == "torch"

    monkeypatch.setattr(backbone_module, "cuda_available", lambda: True)
    assert resolve_runtime(BackboneConfig(runtime="auto", cache_dir=tmp_path)) == "torch"
    assert resolve_runtime(BackboneConfig(runtime="onnx", cache_dir=tmp_path)) == "onnx"


def test_unknown_runtime_and_onnx_without_cache_are_refused():
    with pytest.raises(ModelNotReady, match="Unknown runtime"):
        load_backbone(BackboneConfig(runtime="tensorrt"))
    with pytest.raises(ModelNotReady, match="cache directory"):
        load_backbone(BackboneConfig(runtime="onnx"))


def test_export_ensure_returns_the_existing_file_without_importing_torch(onnx_backbone, cache_dir):
    # given: a cached export; when: a fresh interpreter asks for it and embeds an image
    script = (
        "import sys; from pathlib import Path; from PIL import Image;"
        "from recognition.backbone import BackboneConfig; from recognition.backbone_onnx import OnnxBackbone;"
        "b = OnnxBackbone(BackboneConfig(runtime='onnx', cache_dir=Path(sys.argv[1])));"
        "b.embed([Image.new('RGB', (300, 400), 'red')]);"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(cache_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    # then: torch was never imported (a CPU web process saves its memory)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert export_ensure(BackboneConfig(runtime="onnx", cache_dir=cache_dir), cache_dir) == export_path(
        cache_dir, onnx_backbone.version
    )


@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_one_photo_replayed_from_a_cuda_graph_matches_eager_pytorch():
    # given the same backbone with and without the captured batch-1 graph
    graphed = Backbone(BackboneConfig(device="cuda"))
    eager = Backbone(BackboneConfig(device="cuda", cuda_graphs=False))
    images = [Image.open(path).convert("RGB") for path in demo_photos(per_type=1)[:6]]

    # when each photo is embedded alone, and all of them as one batch (which stays eager)
    one_by_one = np.vstack([graphed.embed([image]) for image in images])
    reference = eager.embed(images)

    # then the embeddings agree
    assert graphed._single is not None
    assert np.min(np.sum(one_by_one * reference, axis=1)) >= 0.9999
    assert np.min(np.sum(graphed.embed(images) * reference, axis=1)) >= 0.9999
