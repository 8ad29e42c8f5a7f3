"""Declaring the queues the patterns use, and reading their depth.

A work queue is durable (its definition survives a broker restart); the
messages in it survive too only if they are published persistent. Reading the
depth with a passive declare asks the broker itself, which is how tests cross
check the ledger.
"""

from typing import Any

from aio_pika.abc import AbstractChannel, AbstractQueue


async def declare_work_queue(
    channel: AbstractChannel, name: str, *, arguments: dict[str, Any] | None = None
) -> AbstractQueue:
    """A durable queue named ``name`` (created if missing)."""
    return await channel.declare_queue(name, durable=True, arguments=arguments)


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    """Messages ready in ``name`` according to the broker (not the client)."""
    queue = await channel.declare_queue(name, passive=True)
    count = queue.declaration_result.message_count
    return int(count or 0)
