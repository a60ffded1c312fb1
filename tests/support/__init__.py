"""What tests share: servers, store fixtures, waiting on conditions, model builders, stand-ins.

One module per concept (``servers``, ``store``, ``waiting``, ``jobs``, ``mem0``,
``scripted_llm``, ``triton_stats``, ``embedder_versions``, ``tiny_sentence_encoder``,
``tiny_cross_encoder``, ``tiny_clip``); pytest puts ``tests/`` on ``sys.path``, so
``from support.x import y`` works from any test. The everyday helpers are re-exported here.
"""

from support.servers import MODEL_REPOSITORY, free_ports, make_triton, settings_for
from support.store import memory, opened, run
from support.waiting import until, wait_for

__all__ = ["MODEL_REPOSITORY", "free_ports", "make_triton", "memory", "opened", "run",
           "settings_for", "until", "wait_for"]
