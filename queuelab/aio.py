"""Run a coroutine from synchronous code, inside a notebook or not.

Scripts call ``asyncio.run``. A Jupyter kernel already runs an event loop, so
``asyncio.run`` there fails with "cannot be called from a running event loop".
``run_sync`` patches the running loop with nest-asyncio in that case, so a
learner who calls a synchronous entry point from a notebook gets the result.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)

    import nest_asyncio

    nest_asyncio.apply(loop)
    return loop.run_until_complete(coro)
