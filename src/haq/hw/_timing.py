"""Wall-clock timing of a callable on this host: warm-up, then the median of repeated runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from haq.errors import ConfigError

# A single run shorter than this is timed as a loop of calls, so timer resolution and call
# overhead stay small next to the measured time.
_MIN_RUN_SECONDS = 2e-3
_MAX_INNER = 1000


def median_ms(fn: Callable[[], object], *, repeats: int = 15, warmup: int = 3) -> float:
    """Median time of one call of ``fn`` in milliseconds.

    ``warmup`` calls are discarded (allocator, caches, kernel selection). Each of the ``repeats``
    timed runs calls ``fn`` enough times to last about 2 ms and reports the time per call.
    """
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"repeats must be >= 1 and warmup >= 0; got {repeats}, {warmup}")
    with torch.inference_mode():
        for _ in range(max(1, warmup)):
            fn()
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        inner = int(min(_MAX_INNER, max(1, _MIN_RUN_SECONDS // max(once, 1e-9))))
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - start) / inner)
    return 1e3 * statistics.median(samples)


@contextmanager
def torch_settings(threads: int | None, engine: str | None) -> Iterator[str]:
    """Temporarily set torch's intra-op threads and quantized engine; yields the engine used."""
    old_threads = torch.get_num_threads()
    old_engine = torch.backends.quantized.engine
    supported = list(torch.backends.quantized.supported_engines)
    if engine is not None and engine not in supported:
        raise ConfigError(f"quantized engine {engine!r} is not available in this torch build; "
                          f"choose one of {', '.join(e for e in supported if e != 'none')}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        if engine is not None:
            torch.backends.quantized.engine = engine
        yield torch.backends.quantized.engine
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.quantized.engine = old_engine
