"""Which jobs still have a message in the broker, read from the broker itself.

The reaper must not re-send every queued job of a long backlog on every pass, so before it re-sends
a job it looks for a message carrying that job's id: waiting in a queue, or delivered to a worker
recently and not yet acknowledged. A segmented video's `segment` and `join` messages count for
its job's current attempt (`LiveMessages.chords`): while they wait, the job is alive. Redis and
the embedded filesystem broker are read directly; with any other broker nothing is known to be
live and stale jobs are simply re-sent (a duplicate message is harmless: claiming a job is a
compare-and-set).
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

from atelier.celery_app import (
    FAST_STYLIZE,
    NST_STYLIZE,
    PING,
    QUEUES,
    VIDEO_FILTER,
    VIDEO_JOIN,
    VIDEO_SEGMENT,
)
from atelier.settings import Settings

log = logging.getLogger(__name__)
JOB_TASKS = frozenset({PING, NST_STYLIZE, FAST_STYLIZE, VIDEO_FILTER})
# Where a chord task's arguments hold (job id, attempt): segment(job_id, attempt, ...),
# join(parts, job_id, attempt).
CHORD_TASKS = {VIDEO_SEGMENT: 0, VIDEO_JOIN: 1}


def _task_args(payload: Any) -> tuple[str | None, list[Any]]:
    """The task name and positional arguments of a raw kombu message (Celery protocol 2)."""
    task = payload.get("headers", {}).get("task")
    body = payload["body"]
    if payload.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return task, json.loads(body)[0]


def job_ids_in(payload: Any) -> list[int]:
    """The job ids a raw kombu message (a Celery protocol 2 task) carries; [] for anything else."""
    try:
        task, args = _task_args(payload)
        if task not in JOB_TASKS:
            return []
        return [int(job_id) for job_id in args[0]]
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return []


def chord_part_in(payload: Any) -> tuple[int, int] | None:
    """(job id, attempt) of a segmented video's `segment` or `join` message; None otherwise."""
    try:
        task, args = _task_args(payload)
        if task not in CHORD_TASKS:
            return None
        at = CHORD_TASKS[task]
        return int(args[at]), int(args[at + 1])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None


@dataclass
class LiveMessages:
    """Job ids found in the broker: in a queue (`waiting`) or delivered and unacknowledged
    (`held`)."""

    waiting: set[int] = field(default_factory=set)
    held: set[int] = field(default_factory=set)
    # job id -> attempts with a `segment` or `join` message waiting or held
    chords: dict[int, set[int]] = field(default_factory=dict)


def live_messages(app: Celery, settings: Settings, delivered_within: float) -> LiveMessages:
    """The job ids with a message waiting in a queue, and those delivered less than
    `delivered_within` seconds ago and not acknowledged (a worker holds it, perhaps with a
    countdown). Raises the broker's connection error when the broker cannot be read.
    """
    if settings.embedded:
        return _found(_filesystem_payloads(settings.broker_folder / "queue"), [])
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


def _found(waiting: list[Any], held: list[Any]) -> LiveMessages:
    chords: dict[int, set[int]] = {}
    for payload in [*waiting, *held]:
        part = chord_part_in(payload)
        if part is not None:
            chords.setdefault(part[0], set()).add(part[1])
    return LiveMessages(_ids(waiting), _ids(held), chords)


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
    return _found(waiting, held)


def _filesystem_payloads(folder: Path) -> list[Any]:
    payloads = []
    for path in folder.glob("*.msg"):
        try:
            payloads.append(json.loads(path.read_bytes()))
        except (OSError, ValueError):  # consumed while we looked, or not a message
            continue
    return payloads
