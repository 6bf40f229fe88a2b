"""Competitions: the registry (`get`, `list_ids`, `suite`, `preflight`) and the prepared-data cache
(`prepare`). See `registry.py` for the folder contract and `cache.py` for the cache layout."""

from mleray.competitions.cache import cache_entry, content_hash, prepare
from mleray.competitions.registry import (
    Competition,
    CompetitionError,
    PreparedCompetition,
    get,
    list_ids,
    load,
    missing_requirements,
    preflight,
    suite,
)

__all__ = ["Competition", "CompetitionError", "PreparedCompetition", "get", "list_ids", "load", "suite",
           "missing_requirements", "preflight", "prepare", "cache_entry", "content_hash"]
