"""What a smaller backbone input would buy: batch-1 time for an upload, and type accuracy, by input size.

    .venv/bin/python bench/input_size.py [--images 60] [--sizes 224,192,160] [--no-int8]

The site embeds at 224 px, and on 2 cores it is 2-3x naive eager PyTorch for an upload from the
shopper page, not the 5x the performance issue asks (bench/README.md, "Embedding throughput"). A
smaller input costs less in the backbone, and for a larger JPEG it lets Pillow decode at a smaller
scale (its draft mode picks the largest reduction that still covers the input). This measures that
trade for the page's uploads (448 px on the shorter side): for each size,
ONNX Runtime fp32 (and static int8) from the JPEG bytes, against naive eager PyTorch at 224 px on a
fully decoded JPEG, photo by photo in turn; and top-1 accuracy of the shipped type head (fitted on
224-px embeddings) on clothing-small's validation photos, and of a type head refitted on the
training photos embedded by the same path (as a new backbone version would need: its heads
refitted, every catalog photo embedded again).
A benchmark, not a test: nothing is asserted, and nothing of it is used by the site.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashion_search.settings")

from embed_runtimes import int8_export, onnx_session_fn  # noqa: E402
from embed_throughput import DATASET, UPLOAD_SHORT_SIDE_PX, as_uploaded, decode, photo_paths  # noqa: E402
from environment import machine_line, median, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60, help="uploads timed per path")
    parser.add_argument("--sizes", default="224,192,160", help="comma-separated input sizes in px")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 exports")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    import django

    django.setup()
    import torch
    from django.conf import settings

    from recognition.backbone import Backbone, BackboneConfig
    from recognition.backbone_onnx import embedding_module, onnx_write
    from recognition.images import to_model_input
    from recognition.recognizers import get_head
    from recognition.training import train_head

    print(f"Machine: {machine_line()}; torch threads {torch.get_num_threads()}\n", flush=True)
    tuned = settings.BACKBONE_TUNED_WEIGHTS if settings.BACKBONE_TUNED_WEIGHTS.exists() else None
    eager = Backbone(BackboneConfig(device="cpu", runtime="torch", tuned_weights=tuned))
    validation = photo_paths("validation")
    sample = validation[:: max(1, len(validation) // args.images)][: args.images]
    uploads = [as_uploaded(p) for p in sample]
    cores = os.cpu_count() or 1  # ONNX Runtime threads, as in bench/embed_throughput.py

    # name -> (embed, input size, draft decode)
    paths: dict[str, tuple] = {"PyTorch eager, 224 px, full decode (naive)": (eager.embed_batch, 224, False)}
    with tempfile.TemporaryDirectory(prefix="input-size-") as tmp:
        for size in sizes:
            fp32 = Path(tmp) / f"fp32-{size}.onnx"
            example = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
            onnx_write(embedding_module(eager.model), example, fp32)
            paths[f"ONNX Runtime fp32, {size} px, draft decode"] = (onnx_session_fn(fp32, cores), size, True)
            if not args.no_int8:
                calibration = [to_model_input(decode(p.read_bytes(), size), size=size)
                               for p in photo_paths("train")[::30][:100]]
                int8_dir = Path(tmp) / f"int8-{size}"
                int8_dir.mkdir()
                int8 = int8_export(fp32, calibration, int8_dir)
                paths[f"ONNX Runtime int8 (static, QDQ), {size} px, draft decode"] = (
                    onnx_session_fn(int8, cores), size, True
                )

        def run(embed, size: int, draft: bool, data: bytes) -> np.ndarray:
            image = decode(data, size if draft else None)
            return embed(to_model_input(image, size=size)[None])

        for embed, size, draft in paths.values():  # warm-up
            for data in uploads[:3]:
                run(embed, size, draft, data)
        times: dict[str, list[float]] = {name: [] for name in paths}
        for data in uploads:  # the paths take turns photo by photo, so each meets the same load
            for name, (embed, size, draft) in paths.items():
                started = time.perf_counter()
                run(embed, size, draft, data)
                times[name].append(time.perf_counter() - started)
        naive = median(times[next(iter(paths))])
        decoded = {size: decode(uploads[0], size) for size in sizes}
        full = decode(uploads[0], None)

        head = get_head("type")
        have_dataset = (DATASET / "validation").exists() and (DATASET / "train").exists()
        validation_files = photo_paths("validation") if have_dataset else []
        train_files = photo_paths("train") if have_dataset else []
        rows = []
        prepared: dict[tuple[int, bool], tuple[list, list]] = {}  # the paths' pixels, one input kind at a time
        for name, (embed, size, draft) in paths.items():
            shipped = refitted = "-"
            if have_dataset:
                if (size, draft) not in prepared:
                    prepared.clear()  # the training photos' pixels take 1.8 GB at 224 px
                    prepared[(size, draft)] = tuple(
                        [to_model_input(decode(p.read_bytes(), size if draft else None), size=size) for p in files]
                        for files in (validation_files, train_files)
                    )
                validation_pixels, train_pixels = prepared[(size, draft)]
                vectors = embedded(embed, validation_pixels)
                shipped = f"{type_accuracy(head, vectors, validation_files):.3f}"
                refit = train_head(
                    "type", embedded(embed, train_pixels), label_indexes(head, train_files), head.labels,
                    backbone_version=head.backbone_version,
                )
                refitted = f"{type_accuracy(refit, vectors, validation_files):.3f}"
            shown = decoded[size] if draft else full
            decoded_size = f"{shown.width}x{shown.height}" + ("" if draft else " (full)")
            rows.append([
                name, decoded_size, f"{median(times[name]) * 1000:.1f}", f"{naive / median(times[name]):.1f}x",
                shipped, refitted,
            ])
    print(f"#### Batch 1, {len(uploads)} upload-size JPEGs ({UPLOAD_SHORT_SIDE_PX} px), decode included; type top-1 on "
          f"{len(validation_files)} validation photos, with the shipped head (fitted on 224-px embeddings of "
          f"{head.backbone_version}) and with a head refitted on {len(train_files)} training photos embedded "
          f"by the same path\n")
    print(table(["path", "JPEG decoded at", "ms / image", "speed-up", "type top-1, shipped head",
                 "type top-1, head refitted"], rows))
    return 0


def embedded(embed, pixels: list[np.ndarray]) -> np.ndarray:
    return np.vstack([embed(np.stack(pixels[i : i + 32])) for i in range(0, len(pixels), 32)])


def label_indexes(head, files: list[Path]) -> np.ndarray:
    return np.array([head.labels.index(p.parent.name) for p in files], dtype=np.int64)


def type_accuracy(head, vectors: np.ndarray, files: list[Path]) -> float:
    predicted = [candidates[0].tag for candidates in head.predict(vectors)]
    return float(np.mean([tag == p.parent.name for tag, p in zip(predicted, files, strict=True)]))


if __name__ == "__main__":
    sys.exit(main())
