"""Redis patterns on redis.asyncio: list queues, priority, pub/sub, streams."""

from queuelab.redisq.list_queue import ListQueue, consume

__all__ = ["ListQueue", "consume"]
