"""The agent as a module-level graph, for LangGraph Studio and ``langgraph dev`` (``langgraph.json`` names it).

Why a module of its own: the LangGraph server imports a graph by ``path:variable`` and keeps
threads itself, so the graph here is compiled without a checkpointer. It is configured from the
environment like every entry point (``gpudoc.config.Settings``): the cluster source
(``GPUDOC_SOURCE``, the simulator by default), the model (``LLM_BASE_URL``, ``LLM_MODEL``) and
the agent's limits. Importing it opens the source; nothing is called until a run starts.
"""

from __future__ import annotations

from gpudoc.config import load_settings
from gpudoc.graph.agent import build_agent
from gpudoc.tools.sources.factory import open_source

settings = load_settings()
source = open_source(settings.source_options(realtime=True))
graph = build_agent(source=source, llm=None, settings=settings)
