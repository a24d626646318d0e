"""Peak memory during a block: accelerator (allocator stats) and host (sampled RSS)."""
from __future__ import annotations

import threading
import time

import psutil
import torch


class PeakMemory:
    """Context manager; host RSS is sampled every `interval` s since torch allocations bypass tracemalloc."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak_host_mb = 0.0
        self.peak_gpu_mb: float | None = None
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_host_mb = max(self.peak_host_mb, self._proc.memory_info().rss / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.peak_host_mb = self._proc.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_host_mb = max(self.peak_host_mb, self._proc.memory_info().rss / 2**20)
        if torch.cuda.is_available():
            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
