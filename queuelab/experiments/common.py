"""Small helpers the experiments share."""

import asyncio
import time
import uuid
from collections.abc import Callable

from queuelab.errors import QueuelabError


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float, what: str, poll_s: float = 0.02
) -> None:
    """Return once ``condition()`` holds; raise naming ``what`` after a timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise QueuelabError(f"gave up after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(poll_s)


def unique_name(prefix: str) -> str:
    """A queue or key name no other run uses."""
    return f"queuelab.{prefix}.{uuid.uuid4().hex[:8]}"
