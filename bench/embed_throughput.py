"""Embedding throughput: naive eager PyTorch against the optimised paths, JPEG decoding included.

    .venv/bin/python bench/embed_throughput.py [--images 60] [--compile] [--no-int8] [--gpu-only]

Real photos of clothing-small's validation split (../shared/datasets/clothing-small, falling back to
the demo catalog), sent as the shopper page sends them: resized to 448 px on the shorter side (the
dataset's photos are enlarged a little to get there), JPEG quality 85. Every timing starts from the
JPEG bytes: decoding (with the site's safety checks), resizing, scaling and the backbone. Prints
markdown tables: where decoding time goes; batch 1 per variant with its speed-up over naive eager
and its agreement with eager torch (cosine); batch 32 images/s; and the int8 export's accuracy
change. Where CUDA is present, the GPU tables of bench/embed_gpu.py follow.
A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashion_search.settings")

from embed_runtimes import EmbedFn, int8_export, onnx_session_fn, openvino_fn, torch_variants  # noqa: E402
from environment import machine_line, median, table  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing-small"
UPLOAD_SHORT_SIDE_PX = 448  # the shopper page shrinks photos to this before sending (static/js/search.js)
UPLOAD_QUALITY = 85  # and encodes them at this JPEG quality
OLD_UPLOAD_SHORT_SIDE_PX = 768  # what the page sent before 2026-11-30: 1024 px on the longer side of a 3:4 photo
PHONE_SIZE_PX = (3024, 4032)  # a 12-megapixel phone photo, as the API or admin may receive it
MAX_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 80_000_000


def photo_paths(split: str) -> list[Path]:
    root = DATASET / split
    paths = sorted(root.glob("*/*.jpg")) if root.exists() else []
    return paths or sorted((ROOT / "catalog" / "demo_data").glob("*/*.jpg"))


def reencoded(path: Path, size: tuple[int, int] | int, quality: int = 90) -> bytes:
    """The photo at `size` (portrait width x height, or an int: the shorter side), as a JPEG."""
    image = Image.open(path).convert("RGB")
    if isinstance(size, int):
        scale = size / min(image.size)
        size = (round(image.width * scale), round(image.height * scale))
    elif image.width > image.height:
        size = (size[1], size[0])
    buffer = io.BytesIO()
    image.resize(size, Image.Resampling.LANCZOS).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def as_uploaded(path: Path) -> bytes:
    """The photo as the shopper page sends a larger one: 448 px on the shorter side, JPEG quality 85."""
    return reencoded(path, UPLOAD_SHORT_SIDE_PX, UPLOAD_QUALITY)


def decode(data: bytes, size: int | None) -> Image.Image:
    """Decoded as the site decodes a photo for a model of `size` px; whole when `size` is None."""
    from recognition.images import decode_image, model_draft_size

    draft = model_draft_size(size) if size else None
    return decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, draft_size=draft)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


# --- where decoding time goes ------------------------------------------------------------------


def decode_breakdown(kinds: dict[str, list[bytes]], size: int) -> str:
    from recognition.images import refuse_polyglot, sniff_format, to_model_input

    rows = []
    for kind, blobs in kinds.items():
        blobs = blobs[:20]
        width, height = Image.open(io.BytesIO(blobs[0])).size
        checks = [timed(lambda b=b: refuse_polyglot(b, sniff_format(b)), 3)[-1] for b in blobs]
        full = [timed(lambda b=b: decode(b, None), 2)[-1] for b in blobs]
        drafted = [timed(lambda b=b: decode(b, size), 2)[-1] for b in blobs]
        full_images = [decode(b, None) for b in blobs]
        draft_images = [decode(b, size) for b in blobs]
        prep_full = [timed(lambda i=i: to_model_input(i, size=size), 2)[-1] for i in full_images]
        prep_draft = [timed(lambda i=i: to_model_input(i, size=size), 2)[-1] for i in draft_images]
        rows.append([
            f"{kind} ({width}x{height}, {np.mean([len(b) for b in blobs]) / 1024:.0f} KB)",
            f"{median(checks) * 1000:.2f}",
            f"{median(full) * 1000:.1f}",
            f"{median(drafted) * 1000:.1f} ({draft_images[0].width}x{draft_images[0].height})",
            f"{median(prep_full) * 1000:.1f}",
            f"{median(prep_draft) * 1000:.1f}",
        ])
    return table(
        ["input", "safety checks ms", "decode, full ms", "decode, draft ms (decoded size)",
         "resize+scale from full ms", "resize+scale from draft ms"],
        rows,
    )


# --- measurements --------------------------------------------------------------------------------


def batch1_interleaved(
    paths: dict[str, tuple[EmbedFn, bool]], blobs: list[bytes], size: int, preprocess
) -> dict[str, tuple[float, np.ndarray]]:
    """Median seconds per image at batch 1 (decode + preprocess + embed) and the embeddings, per path.

    Paths take turns photo by photo, so that every path meets the same load from other processes.
    """
    for embed, draft in paths.values():  # warm-up
        for data in blobs[:3]:
            embed(preprocess(decode(data, size if draft else None))[None])
    times: dict[str, list[float]] = {name: [] for name in paths}
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in paths}
    for data in blobs:
        for name, (embed, draft) in paths.items():
            started = time.perf_counter()
            vectors[name].append(embed(preprocess(decode(data, size if draft else None))[None])[0])
            times[name].append(time.perf_counter() - started)
    return {name: (median(times[name]), np.vstack(vectors[name])) for name in paths}


def batch32(embed: EmbedFn, blobs: list[bytes], size: int, draft: bool, preprocess, batch: int = 32) -> float:
    """Images per second at batch `batch`, decoding in the same thread before each batch."""
    embed(np.stack([preprocess(decode(b, size if draft else None)) for b in blobs[:batch]]))  # warm-up
    started = time.perf_counter()
    for start in range(0, len(blobs), batch):
        chunk = blobs[start : start + batch]
        embed(np.stack([preprocess(decode(b, size if draft else None)) for b in chunk]))
    return len(blobs) / (time.perf_counter() - started)


def pipelined(
    backbone, blobs: list[bytes], size: int, workers: int, processes: bool, batch: int = 32
) -> tuple[float, float]:
    """Images per second through recognition.embed_pipeline (the retag path), and the share spent waiting."""
    from recognition.embed_pipeline import PhotoPreparer, embed_in_batches

    prepare = PhotoPreparer(input_size=size, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)

    def run() -> float:
        sources = ((i, lambda b=b: b) for i, b in enumerate(blobs))
        batches = embed_in_batches(
            backbone, sources, batch_size=batch, workers=workers, prepare=prepare, processes=processes
        )
        return sum(b.decode_wait_s for b in batches)

    run()  # warm-up
    started = time.perf_counter()
    waited = run()
    elapsed = time.perf_counter() - started
    return len(blobs) / elapsed, waited / elapsed


def pool_label(workers: int, processes: bool) -> str:
    kind = "process" if processes else "thread"
    return f"{workers} decode {kind}{'' if workers == 1 else 'es' if processes else 's'}"


def cosine_min(a: np.ndarray, b: np.ndarray) -> str:
    """Row-wise cosine of unit vectors: "min / median"."""
    cosines = np.sum(a * b, axis=1)
    return f"{cosines.min():.5f} / {np.median(cosines):.5f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60, help="photos timed per batch-1 variant")
    parser.add_argument("--batch-images", type=int, default=96, help="photos per batch-32 measurement")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (3-4 minutes to compile on 2 cores)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 quantised export")
    parser.add_argument("--photos", choices=("upload", "phone", "stored"), default="upload",
                        help="what batch 1 and 32 decode: the shopper page's uploads, 12-MP phone photos, "
                             "or the files as stored")
    parser.add_argument("--gpu-only", action="store_true",
                        help="only the GPU tables (the CPU ones take minutes where there are many cores)")
    args = parser.parse_args(argv)

    import django

    django.setup()
    import torch
    from django.conf import settings

    from recognition.backbone import INPUT_SIZES, BackboneConfig, get_backbone
    from recognition.backbone_onnx import export_ensure
    from recognition.recognizers import get_head

    print(f"Machine: {machine_line()}; torch threads {torch.get_num_threads()}\n", flush=True)
    tuned = settings.BACKBONE_TUNED_WEIGHTS if settings.BACKBONE_TUNED_WEIGHTS.exists() else None
    config = BackboneConfig(device="cpu", runtime="torch", tuned_weights=tuned)
    onnx_config = BackboneConfig(device="cpu", runtime="onnx", tuned_weights=tuned, cache_dir=settings.MODEL_CACHE_DIR)
    what = {
        "upload": f"upload-size JPEGs ({UPLOAD_SHORT_SIDE_PX} px)", "phone": "12-MP phone JPEGs",
        "stored": "JPEGs as stored",
    }
    validation = photo_paths("validation")
    step = max(1, len(validation) // args.images)
    sample = validation[::step][: args.images]
    page_uploads = [as_uploaded(p) for p in sample]
    uploads = page_uploads
    if args.photos == "phone":
        uploads = [reencoded(p, PHONE_SIZE_PX) for p in sample]
    elif args.photos == "stored":
        uploads = [p.read_bytes() for p in sample]
    gpu_config = BackboneConfig(device="cuda", runtime="torch", tuned_weights=tuned)
    if args.gpu_only:
        if not torch.cuda.is_available():
            print("No CUDA device: nothing to measure with --gpu-only.", file=sys.stderr)
            return 1
        from embed_gpu import gpu_tables

        gpu_tables(gpu_config, uploads, INPUT_SIZES[gpu_config.name], what[args.photos])
        return 0

    site = get_backbone(onnx_config)
    size = site.input_size
    preprocess = site.preprocess
    print(f"Backbone {site.version} ({'fine-tuned' if tuned else 'ImageNet weights'}), input {size} px.\n")
    kinds = {
        "as stored": [p.read_bytes() for p in sample],
        f"upload ({UPLOAD_SHORT_SIDE_PX} px)": page_uploads,
        "upload before 2026-11-30 (1024 px)": [reencoded(p, OLD_UPLOAD_SHORT_SIDE_PX) for p in sample],
        "phone (12 MP)": [reencoded(p, PHONE_SIZE_PX) for p in sample[:10]],
    }
    print("#### Where decoding time goes (median per photo, 1 thread)\n")
    print(decode_breakdown(kinds, size) + "\n", flush=True)

    example = np.stack([preprocess(decode(b, size)) for b in uploads[:1]])
    variants = {
        f"PyTorch {name}": value for name, value in torch_variants(config, example, args.compile).items()
    }
    onnx_path = export_ensure(onnx_config, settings.MODEL_CACHE_DIR)
    cores = os.cpu_count() or 1
    variants[f"ONNX Runtime fp32, {cores} threads"] = (onnx_session_fn(onnx_path, cores), "")
    variants["ONNX Runtime fp32, 1 thread"] = (onnx_session_fn(onnx_path, 1), "")
    for precision in ("f32", "bf16"):
        for threads in sorted({cores, 1}, reverse=True):
            fn = openvino_fn(onnx_path, threads, precision)
            if fn is not None:
                variants[f"OpenVINO {precision}, {threads} thread{'s' if threads > 1 else ''}"] = (fn, "")
    if not args.no_int8:
        with tempfile.TemporaryDirectory() as tmp:
            calibration = [preprocess(decode(p.read_bytes(), size)) for p in photo_paths("train")[::30][:100]]
            started = time.perf_counter()
            int8_path = int8_export(onnx_path, calibration, Path(tmp))
            int8_note = f"quantised in {time.perf_counter() - started:.0f}s on {len(calibration)} training photos"
            int8_name = f"ONNX Runtime int8 (static, QDQ), {cores} threads"
            variants[int8_name] = (onnx_session_fn(int8_path, cores), int8_note)

    # --- batch 1 --------------------------------------------------------------------------------
    naive = "PyTorch eager, full decode (naive)"
    paths: dict[str, tuple[EmbedFn, bool]] = {naive: (variants["PyTorch eager"][0], False)}
    for name, (embed, _) in variants.items():
        paths[f"{name}, draft decode"] = (embed, True)
        if name.startswith(f"ONNX Runtime fp32, {cores}"):
            paths[f"{name}, full decode"] = (embed, False)
    measured = batch1_interleaved(paths, uploads, size, preprocess)
    naive_s, naive_vectors = measured[naive]
    eager_draft_vectors = measured["PyTorch eager, draft decode"][1]
    notes = {f"{name}, draft decode": note for name, (_, note) in variants.items()}
    rows = []
    for label, (seconds, vectors) in measured.items():
        same_pixels = naive_vectors if label == naive or label.endswith("full decode") else eager_draft_vectors
        rows.append([label, f"{seconds * 1000:.1f}", f"{1 / seconds:.1f}", f"{naive_s / seconds:.1f}x",
                     cosine_min(vectors, same_pixels), cosine_min(vectors, naive_vectors), notes.get(label, "")])
    print(f"#### Batch 1, {what[args.photos]}, decode included: median of {len(uploads)} photos, "
          "the paths taking turns photo by photo\n")
    print(table(["path", "ms / image", "images/s", "speed-up", "cosine to eager, same pixels: min / median",
                 "cosine to naive: min / median", "note"], rows) + "\n", flush=True)

    # --- batch 32 -------------------------------------------------------------------------------
    batch_blobs = (uploads * (args.batch_images // len(uploads) + 1))[: args.batch_images]
    rows32 = []
    naive32 = batch32(variants["PyTorch eager"][0], batch_blobs, size, False, preprocess)
    rows32.append(["PyTorch eager, full decode (naive), decoding in the same thread", f"{naive32:.1f}", "1.0x"])
    for name in (f"ONNX Runtime fp32, {cores} threads", *[n for n in variants if "int8" in n]):
        rate = batch32(variants[name][0], batch_blobs, size, True, preprocess)
        rows32.append([f"{name}, draft decode, decoding in the same thread", f"{rate:.1f}", f"{rate / naive32:.1f}x"])
    for processes, workers in ((False, 1), (False, 2), (True, 1), (True, 2)):
        rate, waiting = pipelined(site, batch_blobs, size, workers, processes)
        rows32.append([f"site backbone (ONNX fp32) + embed_pipeline, {pool_label(workers, processes)} "
                       f"(waiting for decoding {waiting:.0%} of the time)", f"{rate:.1f}", f"{rate / naive32:.1f}x"])
    print(f"#### Batch 32, {what[args.photos]}, decode included: {len(batch_blobs)} photos\n")
    print(table(["path", "images/s", "vs naive"], rows32) + "\n", flush=True)
    if torch.cuda.is_available():
        from embed_gpu import gpu_tables

        gpu_tables(gpu_config, uploads, size, what[args.photos])

    # --- int8 accuracy change -------------------------------------------------------------------
    if not args.no_int8 and (DATASET / "validation").exists():
        int8_name = next(n for n in variants if "int8" in n)
        head = get_head("type")
        files = photo_paths("validation")
        labels = [p.parent.name for p in files]
        pixels = [preprocess(decode(p.read_bytes(), size)) for p in files]
        accuracy_rows = []
        reduced = [n for n in variants if "int8" in n or "bf16" in n]
        for name in (f"ONNX Runtime fp32, {cores} threads", *reduced):
            embed = variants[name][0]
            vectors = np.vstack([embed(np.stack(pixels[i : i + 32])) for i in range(0, len(pixels), 32)])
            predicted = [p[0].tag for p in head.predict(vectors)]
            accuracy_rows.append((name, vectors, np.mean([a == b for a, b in zip(predicted, labels, strict=True)])))
        print(f"#### int8 and bf16 against fp32 on the {len(files)} validation photos (type head, trained on fp32"
              f" embeddings of backbone {head.backbone_version})\n")
        fp32_vectors = accuracy_rows[0][1]
        print(table(["export", "type top-1 accuracy", "cosine to fp32: min / median"], [
            [name, f"{accuracy:.3f}", cosine_min(vectors, fp32_vectors)] for name, vectors, accuracy in accuracy_rows
        ]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
