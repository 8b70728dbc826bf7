"""The planner's estimate of the chunks a filter selects, remembered for a short while.

Routing asks PostgreSQL's planner (``EXPLAIN``, no rows read), whose estimates come from the
statistics that ANALYZE refreshes. An estimate is kept per engine and filter for a minute, so a
filter that an application repeats costs no extra round trip; :func:`forget_estimates` drops
them after a bulk load. A stale estimate can only pick the slower path, never a wrong answer:
the exact path is exact, and a short HNSW answer falls back to it.
"""

from __future__ import annotations

import json
import time
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine

from pgsearch.search import prepared

__all__ = ["ESTIMATE_TTL_SECONDS", "estimate_rows", "forget_estimates"]

ESTIMATE_TTL_SECONDS = 60.0
_MAX_FILTERS = 4096

_ESTIMATES: WeakKeyDictionary[Engine, dict[str, tuple[float, int]]] = WeakKeyDictionary()


def estimate_rows(connection: Connection, filter_key: str) -> int:
    """The planner's estimate of the chunks a filter selects.

    Args:
        connection: Where to ask.
        filter_key: The filter's canonical JSON (:attr:`SearchRequest.filter_key
            <pgsearch.search.options.SearchRequest.filter_key>`).
    """
    known = _ESTIMATES.setdefault(connection.engine, {})
    now = time.monotonic()
    hit = known.get(filter_key)
    if hit is not None and now - hit[0] < ESTIMATE_TTL_SECONDS:
        return hit[1]
    plan: Any = connection.execute(prepared.estimate_statement(filter_key)).scalar_one()
    document = json.loads(plan) if isinstance(plan, str) else plan
    rows = int(document[0]["Plan"]["Plan Rows"])
    if len(known) >= _MAX_FILTERS:
        known.clear()
    known[filter_key] = (now, rows)
    return rows


def forget_estimates(engine: Engine) -> None:
    """Drop the estimates kept for ``engine`` (its statistics changed)."""
    _ESTIMATES.pop(engine, None)
