"""Replay a model call on a fixed input shape from a captured CUDA graph.

Eager PyTorch launches each of Lite0's hundred-odd kernels from Python. For one photo on an H100 that
took 5 to 10 ms, several times the arithmetic, so a GPU embedded one photo no faster than ONNX Runtime
on the CPU (bench/README.md, "On a GPU"). A CUDA graph launches the whole recorded sequence at once.
Batches go through eager PyTorch as before; only the batch-1 shape (an upload, a single tagging) is
captured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import torch

WARM_UP_CALLS = 3  # on a side stream before capture, as torch.cuda.graphs asks, so cuDNN picks its kernels


class CapturedCall:
    """`fn` on inputs of one `shape`, replayed from a CUDA graph; thread-safe (one replay at a time).

    Captured once, when the backbone loads; other threads' CUDA calls during the capture don't make
    it fail (thread-local capture errors), though the capture itself records only this thread's work.
    """

    def __init__(
        self, fn: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...], device: torch.device
    ) -> None:
        import torch

        self.shape = shape
        self.device = device
        self._lock = threading.Lock()
        with torch.cuda.device(device):
            self._input = torch.zeros(shape, device=device)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.no_grad(), torch.cuda.stream(side):
                for _ in range(WARM_UP_CALLS):
                    fn(self._input)
            torch.cuda.current_stream(device).wait_stream(side)
            self._graph = torch.cuda.CUDAGraph()
            # thread_local: CUDA calls of other threads (another request) don't fail during capture
            with torch.no_grad(), torch.cuda.graph(self._graph, capture_error_mode="thread_local"):
                self._output = fn(self._input)

    def __call__(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        import torch

        if batch.shape != self.shape:
            raise ValueError(f"captured for inputs of shape {self.shape}, got {batch.shape}")
        with self._lock, torch.cuda.device(self.device):
            self._input.copy_(torch.from_numpy(batch))
            self._graph.replay()
            return self._output.float().cpu().numpy()  # a copy: the next replay overwrites the output
