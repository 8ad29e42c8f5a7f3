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
    """Messages ready in ``name`` according to the broker (not the client).

    The passive declare goes to the underlying channel: a robust channel
    answers a repeated ``declare_queue`` from its cache, with a stale count.
    """
    underlay = await channel.get_underlay_channel()
    declared = await underlay.queue_declare(name, passive=True)
    return int(declared.message_count or 0)
