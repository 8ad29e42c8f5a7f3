"""Redis patterns on redis.asyncio: list queues, priority, pub/sub, streams.

Each pattern comes as the seed writes it and, where that version loses or
reorders work, as a corrected one; every queue here runs on a real Redis and
on the embedded fakeredis alike.
"""

from queuelab.redisq.consumer import Outcome, TaskSource, consume
from queuelab.redisq.list_queue import ListQueue
from queuelab.redisq.priority import (
    PriorityQueue,
    SeedPriorityQueue,
    check_priority,
)
from queuelab.redisq.pubsub import Subscriber, publish
from queuelab.redisq.reliable_queue import ReliableListQueue, run_reaper
from queuelab.redisq.streams import Claimed, Entry, StreamQueue, consume_stream

__all__ = [
    "Claimed",
    "Entry",
    "ListQueue",
    "Outcome",
    "PriorityQueue",
    "ReliableListQueue",
    "SeedPriorityQueue",
    "StreamQueue",
    "Subscriber",
    "TaskSource",
    "check_priority",
    "consume",
    "consume_stream",
    "publish",
    "run_reaper",
]
