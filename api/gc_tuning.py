"""The cyclic collector's thresholds for the API's workers and the migration's batches.

CPython collects its youngest generation whenever allocations of container objects outnumber deallocations by 700
(the default). A request, or a migration batch, allocates hundreds to thousands of dicts, lists and tuples at a time
and frees them by reference counting, so at the default the collector runs on those transient peaks and finds
nothing to free. Measured (docs/benchmarks.md):
- API workers under `make bench-api`: ~7,000 young, ~650 middle and ~60 full collections per worker per run,
  1.6-2.4 s of CPU, and full collections of up to 51 ms, each of which stops every request of its worker. With the
  first threshold at 50,000: a handful per worker after start-up, none of them full.
- Migration: at the default, collection took 4-7 of ~32 µs of the per-document CPU; with the first threshold at
  50,000, ~1 µs.
Garbage in reference cycles is still collected, once 50,000 more containers are alive than at the last collection.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Generator

RAISED_GC_THRESHOLDS = (50_000, 20, 10)


@contextlib.contextmanager
def raised_gc_thresholds() -> Generator[None, None, None]:
    """RAISED_GC_THRESHOLDS inside the block, the process's own settings back afterwards (also on an error)."""
    previous = gc.get_threshold()
    gc.set_threshold(*RAISED_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
