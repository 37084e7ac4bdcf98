"""Which jobs still have a message in the broker, read from the broker itself.

The reaper must not re-send every queued job of a long backlog on every pass, so before it re-sends
a job it looks for a message carrying that job's id: waiting in a queue, or delivered to a worker
recently and not yet acknowledged. Redis and the embedded filesystem broker are read directly;
with any other broker nothing is known to be live and stale jobs are simply re-sent (a duplicate
message is harmless: claiming a job is a compare-and-set).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from atelier.celery_app import FAST_STYLIZE, NST_STYLIZE, PING, QUEUES, VIDEO_FILTER
from atelier.settings import Settings

log = logging.getLogger(__name__)
JOB_TASKS = frozenset({PING, NST_STYLIZE, FAST_STYLIZE, VIDEO_FILTER})


def job_ids_in(payload: Any) -> list[int]:
    """The job ids a raw kombu message (a Celery protocol 2 task) carries; [] for anything else."""
    try:
        if payload.get("headers", {}).get("task") not in JOB_TASKS:
            return []
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return [int(job_id) for job_id in args[0]]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return []


@dataclass
class LiveMessages:
    """Job ids found in the broker: in a queue (`waiting`) or delivered and unacknowledged
    (`held`)."""

    waiting: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)


def live_messages(app: Celery, settings: Settings, delivered_within: float) -> LiveMessages:
    """The job ids with a message waiting in a queue, and those delivered less than
    `delivered_within` seconds ago and not acknowledged (a worker holds it, perhaps with a
    countdown). Raises the broker's connection error when the broker cannot be read.
    """
    if settings.embedded:
        return LiveMessages(waiting=_filesystem_ids(settings.broker_folder / "queue"))
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1)  # a down broker: give up now, the next pass retries
        channel = conn.default_channel
        if conn.transport.driver_type != "redis":
            log.info("cannot list messages on a %s broker", conn.transport.driver_type)
            return LiveMessages()
        return _redis_messages(channel, delivered_within)


def _ids(payloads: Iterable[Any]) -> set[int]:
    found: set[int] = set()
    for payload in payloads:
        found.update(job_ids_in(payload))
    return found


def _redis_messages(channel: Any, delivered_within: float) -> LiveMessages:
    client = channel.client
    keys = {channel._q_for_pri(queue, pri) for queue in QUEUES for pri in channel.priority_steps}
    waiting = [json.loads(raw) for key in sorted(keys) for raw in client.lrange(key, 0, -1)]
    tags = client.zrangebyscore(channel.unacked_index_key, time.time() - delivered_within, "+inf")
    held = []
    if tags:
        for raw in client.hmget(channel.unacked_key, tags):
            if raw is not None:
                held.append(json.loads(raw)[0])  # [payload, exchange, routing key]
    return LiveMessages(_ids(waiting), _ids(held))


def _filesystem_ids(folder: Path) -> set[int]:
    payloads = []
    for path in folder.glob("*.msg"):
        try:
            payloads.append(json.loads(path.read_bytes()))
        except (OSError, ValueError):  # consumed while we looked, or not a message
            continue
    return _ids(payloads)
