"""What every route needs, built once per app: settings, the Celery app, storage, sessions."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property

from celery import Celery
from fastapi import Request
from sqlalchemy.orm import Session

from api.http.brake import FailureBrake
from api.http.events import BatchFeed
from atelier.consumers import ConsumerWatch
from atelier.db import session_scope
from atelier.settings import Settings
from atelier.storage import Storage, open_storage


@dataclass
class Services:
    settings: Settings
    celery: Celery

    @property
    def db_url(self) -> str:
        return self.settings.resolved_database_url

    @cached_property
    def storage(self) -> Storage:
        return open_storage(self.settings)

    @cached_property
    def consumers(self) -> ConsumerWatch:
        """Which queues the deployment's workers consume, asked at most every 30 s."""
        return ConsumerWatch(self.celery)

    @cached_property
    def brake(self) -> FailureBrake:
        """Wrong tokens per client, shared by the token check and the login form."""
        return FailureBrake(self.settings.auth_failures_per_minute)

    @cached_property
    def feed(self) -> BatchFeed:
        """The batches event streams follow, with one listener per process."""
        return BatchFeed(self.db_url, self.settings.max_streams_per_client)

    def session(self) -> AbstractContextManager[Session]:
        """A short transaction, opened and closed inside a route's own thread.

        Routes never take a session from a generator dependency: its cleanup would run as a
        separate step in the thread pool, so under load every pool thread could be waiting for
        a connection that only a queued cleanup would give back.
        """
        return session_scope(self.db_url)


def services(request: Request) -> Services:
    return request.app.state.services
