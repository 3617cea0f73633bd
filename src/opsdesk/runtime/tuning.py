"""Process-wide tuning for the long-running commands (``opsdesk serve``, ``opsdesk probe``).

CPython's cyclic garbage collector runs a young-generation pass every 700 net allocations of
container objects, and every sample, result row and label set is one. On the hot paths that is
thousands of passes a second, and the full passes walk every live object. Measured here with
bench/scrape.py: the default thresholds cost a third of the scrape path's CPU (about 150,000 →
230,000 samples/s with the thresholds below), and with bench/checks.py about 80 µs per check
before ``gc.freeze()``. Reference counting still frees almost everything at once; the collector
only has to find cycles, which are rare on these paths.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000


def tune_gc() -> None:
    """Move what start-up loaded (modules, settings, templates) out of the collector's sight and
    make young-generation passes rarer. Call once, after start-up and before serving."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
