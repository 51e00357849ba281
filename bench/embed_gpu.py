"""The GPU tables of bench/embed_throughput.py: batch 1 and batch 32 on CUDA, decode included.

Run through that script (`--gpu-only` for these tables alone); it calls `gpu_tables` when CUDA is
present. Naive is eager PyTorch fp32 on fully decoded JPEGs; the site's GPU path decodes at reduced
size, replays one photo from a CUDA graph and embeds batches eagerly through recognition.embed_pipeline.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from embed_throughput import batch1_interleaved, batch32, cosine_min, decode, pipelined, pool_label
from environment import table


def gpu_tables(config, blobs: list[bytes], size: int, what: str) -> None:
    """Batch 1 and batch 32 on the GPU: naive eager (full decode in the same thread) against the site's path.

    The site's GPU path is PyTorch fp32 (`Backbone` on cuda) with draft decoding: one photo replayed from
    a CUDA graph, batches eager, through recognition.embed_pipeline. fp16 with channels-last is
    measured beside it as a candidate, with its agreement to fp32.
    """
    import torch

    from recognition.backbone import Backbone

    site = Backbone(config)
    eager = Backbone(dataclasses.replace(config, cuda_graphs=False))
    preprocess = site.preprocess
    print(f"#### On the GPU ({torch.cuda.get_device_name(0)}, torch {torch.__version__})\n")
    half = Backbone(dataclasses.replace(config, cuda_graphs=False))
    half.model = half.model.half().to(memory_format=torch.channels_last)

    def embed_half(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to("cuda", non_blocking=True).half()
            features = half.model.extract_features(tensor.contiguous(memory_format=torch.channels_last))
            pooled = torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1).float()
            return torch.nn.functional.normalize(pooled, dim=1).cpu().numpy()

    naive = "GPU eager fp32, full decode (naive)"
    paths = {
        naive: (eager.embed_batch, False),
        "GPU eager fp32, draft decode": (eager.embed_batch, True),
        "GPU fp32 from a CUDA graph, draft decode (the site)": (site.embed_batch, True),
        "GPU eager fp16 channels-last, draft decode": (embed_half, True),
    }
    measured = batch1_interleaved(paths, blobs, size, preprocess)
    naive_s, naive_vectors = measured[naive]
    site_vectors = measured["GPU eager fp32, draft decode"][1]
    rows = [
        [label, f"{seconds * 1000:.2f}", f"{1 / seconds:.0f}", f"{naive_s / seconds:.1f}x",
         cosine_min(vectors, naive_vectors if label == naive else site_vectors)]
        for label, (seconds, vectors) in measured.items()
    ]
    print(f"Batch 1, {what}, decode included: median of {len(blobs)} photos\n")
    print(table(["path", "ms / image", "images/s", "speed-up", "cosine to GPU fp32, same pixels: min / median"],
                rows) + "\n", flush=True)

    batch_blobs = (blobs * (512 // len(blobs) + 1))[:512]
    pixels = np.stack([preprocess(decode(b, size)) for b in batch_blobs[:32]])
    rows32 = []
    naive32 = batch32(eager.embed_batch, batch_blobs, size, False, preprocess)
    rows32.append(["GPU eager fp32, full decode in the same thread (naive)", f"{naive32:.0f}", "1.0x"])
    for name, embed in (("fp32", site.embed_batch), ("fp16 channels-last", embed_half)):
        embed(pixels)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(20):
            embed(pixels)
        rate = 20 * len(pixels) / (time.perf_counter() - started)
        rows32.append([f"GPU eager {name}, backbone alone (decoded batch of 32 in memory)", f"{rate:.0f}",
                       f"{rate / naive32:.1f}x"])
    cores = os.cpu_count() or 1
    for processes in (False, True):
        for workers in sorted({1, 2, 4, 8, 16, cores - 1} - {0}):
            if workers > cores:
                continue
            rate, waiting = pipelined(site, batch_blobs, size, workers, processes)
            rows32.append([f"GPU eager fp32 + embed_pipeline, {pool_label(workers, processes)}, draft decode "
                           f"(backbone waiting for decoding {waiting:.0%} of the time)",
                           f"{rate:.0f}", f"{rate / naive32:.1f}x"])
    print(f"Batch 32, {what}, decode included: {len(batch_blobs)} photos, {cores} CPU cores\n")
    print(table(["path", "images/s", "vs naive"], rows32) + "\n", flush=True)
