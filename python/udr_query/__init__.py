"""The migration plan's query engine: ``udr_query.QueryEngine(store, catalog, …)``."""

from udr.compat import EngineTransaction, QueryEngine

__all__ = ["QueryEngine", "EngineTransaction"]
