"""The store's own event loop, on a thread of its own.

psycopg's async pool belongs to the loop it was opened on; the gateway calls the store from
its server loop, from job threads and (in tests and the CLI) from a fresh ``asyncio.run`` per
call. So the pool lives on this loop and every operation is handed to it: the caller awaits
a future from any loop, SQL and the lexical analysis never run on the caller's loop, and a
cancelled caller cancels the operation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @staticmethod
    async def _cancel_rest() -> None:
        current = asyncio.current_task()
        rest = [task for task in asyncio.all_tasks() if task is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on this loop; await it from any other."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Cancel what still runs here (operations whose callers went away), then stop."""
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._cancel_rest(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
