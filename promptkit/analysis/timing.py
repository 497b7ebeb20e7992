"""Timing and memory measurements that do not depend on the model kind: median wall time, the bytes autograd keeps
for backward, and the process's peak resident memory on Linux."""
from __future__ import annotations

import re
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn


def autocast(device: str, amp: bool):
    """bf16 autocast on ``device`` when ``amp``, else a no-op context."""
    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp)


def median_ms(fn: Callable[[], Any], device: str, repeats: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in ms after ``warmup`` calls: CUDA events on a GPU, ``perf_counter`` on CPU."""
    for _ in range(warmup):
        fn()
    times = []
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def saved_activation_bytes(fn: Callable[[], Any], model: nn.Module) -> int:
    """Bytes of the tensors autograd keeps for backward while ``fn()`` runs a forward: one count per distinct
    storage, the model's parameters excluded. Device-independent and deterministic, unlike a process's peak memory,
    so it compares the activation memory of training variants on CPU as well.

    Written by hand: ``torch.autograd.graph.saved_tensors_hooks`` sees each saved tensor, nothing sums them.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params and s.nbytes():
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


def rss_kib(field: str) -> int:
    """A memory field of ``/proc/self/status`` in KiB (``'VmRSS'`` resident, ``'VmHWM'`` peak resident)."""
    with open('/proc/self/status') as f:
        return int(re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.MULTILINE).group(1))


def reset_peak_rss() -> bool:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so the resident size is what is live, and
    reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5). False where that is not possible.

    Written by hand: neither torch nor the standard library resets the peak resident size.
    """
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False
