"""What every route needs, built once per app: settings, the Celery app, storage, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from celery import Celery
from fastapi import Request
from sqlalchemy.orm import Session

from atelier.db import session_scope
from atelier.settings import Settings
from atelier.storage import Storage


@dataclass
class Services:
    settings: Settings
    celery: Celery

    @property
    def db_url(self) -> str:
        return self.settings.resolved_database_url

    @cached_property
    def storage(self) -> Storage:
        return Storage(self.settings.resolved_storage_dir)


def services(request: Request) -> Services:
    return request.app.state.services


def db_session(request: Request) -> Iterator[Session]:
    """A transaction per request, committed when the route returns without error."""
    with session_scope(services(request).db_url) as session:
        yield session
