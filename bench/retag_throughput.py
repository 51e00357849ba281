"""Bulk tagging end to end: photos/s of `manage.py retag` on a fresh catalog, GPU when present.

    .venv/bin/python bench/retag_throughput.py [--photos 1000] [--decode-workers 1,2,4,8]

What a merchant waits for after importing a catalog. `catalog.management.commands.retag.photos_retag`
(the `retag` command's work) reads each stored photo; a pool of processes decodes it and analyses
its colours; the backbone the site would pick (GPU eager PyTorch when CUDA is present, ONNX Runtime
on the CPU otherwise) embeds batches of 32; the attribute heads run on each batch, whose embeddings
and tags are written in one transaction; the index is rebuilt once at the end.

Set-up: a throwaway SQLite database and media folder in a temporary directory, and `--photos`
catalog photos made from the validation split of clothing-small (the demo catalog where it is
missing), re-encoded at 1024 px as a shop's product photos often are. Each count of decoding
processes tags the whole catalog again (`--force`). A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from environment import machine_line, table  # noqa: E402
from serving import app_env  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing-small" / "validation"
PHOTO_SIDE_PX = 1024


def source_photos() -> list[Path]:
    paths = sorted(DATASET.glob("*/*.jpg")) if DATASET.exists() else []
    return paths or sorted((ROOT / "catalog" / "demo_data").glob("*/*.jpg"))


def catalog_create(count: int) -> str:
    """`count` items of one photo each, pending; returns where the photos came from."""
    from django.core.files.base import ContentFile
    from PIL import Image

    from catalog.models import Item, Photo

    sources = source_photos()
    encoded = []
    for path in sources:
        image = Image.open(path).convert("RGB")
        scale = PHOTO_SIDE_PX / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    storage = Photo._meta.get_field("image").storage
    names = [storage.save(f"photos/bench/{i:04d}.jpg", ContentFile(data)) for i, data in enumerate(encoded)]
    items = Item.objects.bulk_create(Item(name=f"Bench item {i}") for i in range(count))
    Photo.objects.bulk_create(
        Photo(item=item, image=names[i % len(names)], status=Photo.Status.PENDING) for i, item in enumerate(items)
    )
    where = "clothing-small validation" if DATASET.exists() else "the demo catalog"
    return f"{len(sources)} photos of {where}, re-encoded at {PHOTO_SIDE_PX} px"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--decode-workers", default="1,2,4,8", help="comma-separated counts of decoding processes")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    workers = [int(n) for n in args.decode_workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="retag-bench-") as tmp:
        var_dir = Path(tmp)
        os.environ.update(app_env(database_url=f"sqlite:///{var_dir / 'db.sqlite3'}", var_dir=var_dir,
                                  LOG_LEVEL="WARNING"))
        os.environ["DJANGO_SETTINGS_MODULE"] = "fashion_search.settings"
        import django

        django.setup()
        from django.core.management import call_command

        from catalog.management.commands.retag import photos_retag
        from recognition.services import backbone_get

        print(f"Machine: {machine_line()}\n", flush=True)
        call_command("migrate", verbosity=0)
        origin = catalog_create(args.photos)
        backbone = backbone_get()
        print(f"{args.photos} catalog photos ({origin}); backbone {backbone.version} on {backbone.device}; "
              f"batch {args.batch_size}\n", flush=True)
        photos_retag(force=True, limit=64, batch_size=args.batch_size, decode_workers=workers[0])  # warm-up
        rows = []
        for count in workers:
            report = photos_retag(force=True, limit=None, batch_size=args.batch_size, decode_workers=count)
            rows.append([
                str(count), str(report.tagged), str(report.failed), f"{report.seconds:.1f}",
                f"{report.tagged / report.seconds:.0f}", f"{report.decode_wait_s / report.seconds:.0%}",
            ])
            print(f"  decode processes: {count}, {report.tagged / report.seconds:.0f} photos/s", flush=True)
        print()
        print(table(["decode processes", "tagged", "failed", "seconds (index rebuild included)", "photos/s",
                     "backbone waiting for decoding"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
