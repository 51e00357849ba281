"""The runtimes the embedding benches compare: eager PyTorch variants, ONNX Runtime, OpenVINO, static int8.

Each builder returns a function from a (n, 3, size, size) float32 batch to its (n, 1280) embeddings.
Used by bench/embed_throughput.py and bench/input_size.py; nothing here is used by the site.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

EmbedFn = Callable[[np.ndarray], np.ndarray]


def torch_variants(config, example: np.ndarray, with_compile: bool) -> dict[str, tuple[EmbedFn, str]]:
    import torch

    from recognition.backbone import Backbone
    from recognition.backbone_onnx import embedding_module

    eager = Backbone(config)
    variants: dict[str, tuple[EmbedFn, str]] = {"eager": (eager.embed_batch, "")}
    threads = torch.get_num_threads()

    def run_one_thread(batch: np.ndarray) -> np.ndarray:
        torch.set_num_threads(1)
        try:
            return eager.embed_batch(batch)
        finally:
            torch.set_num_threads(threads)

    variants["eager, 1 thread"] = (run_one_thread, "")

    channels_last = embedding_module(Backbone(config).model.to(memory_format=torch.channels_last))

    def run_channels_last(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensor = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return channels_last(tensor).numpy()

    variants["channels-last"] = (run_channels_last, "")

    with torch.inference_mode():
        traced = torch.jit.trace(embedding_module(Backbone(config).model), torch.from_numpy(example))
        scripted = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    def run_script(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return scripted(torch.from_numpy(batch)).numpy()

    variants["TorchScript (traced, frozen)"] = (run_script, "")

    if with_compile:
        compiled = torch.compile(embedding_module(Backbone(config).model))

        def run_compiled(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return compiled(torch.from_numpy(batch)).numpy()

        started = time.perf_counter()
        try:
            run_compiled(example)
            run_compiled(np.concatenate([example] * 32))
            note = f"compiling took {time.perf_counter() - started:.0f}s"
            variants["torch.compile (inductor)"] = (run_compiled, note)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports any compiler failure and goes on
            print(f"torch.compile failed: {exc!r}"[:500], file=sys.stderr)
    return variants


def onnx_session_fn(path: Path, threads: int) -> EmbedFn:
    import onnxruntime as ort

    from recognition.backbone_onnx import session_options

    session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"pixels": batch})[0]


def openvino_fn(path: Path, threads: int, precision: str) -> EmbedFn | None:
    """The ONNX export compiled by OpenVINO for the CPU; None when OpenVINO or `precision` is unavailable."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return None
    compiled = core.compile_model(str(path), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
    })
    request = compiled.create_infer_request()
    output = compiled.output(0)
    return lambda batch: request.infer({0: batch})[output].copy()


def int8_export(fp32_path: Path, calibration: list[np.ndarray], out_dir: Path) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights), calibrated on real training photos."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"pixels": array[None]} for array in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    prepared = out_dir / "prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    output = out_dir / "int8.onnx"
    quantize_static(
        str(prepared), str(output), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )
    return output
