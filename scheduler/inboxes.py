"""Folder inboxes: images dropped in a watched folder become NST batches on their own.

`ATELIER_INBOXES` is JSON, or the path of a `.json` or `.toml` file, mapping an inbox name to its
folder, its styles (image paths or stored asset sha256s) and its NST parameters:

    {"photos": {"folder": "/srv/inbox", "styles": ["/srv/styles/wave.jpg"],
                "params": {"size": 512, "iterations": 300}}}

Each scan, every new file of the folder (settled: unchanged for `settle_seconds`) is hashed and
recorded in `inbox_files`, unique on (inbox, sha256): a file is taken once, whatever its name and
however often the scheduler restarts. A file that is not an acceptable image is recorded with the
reason and never looked at again; so is a file whose name is not valid UTF-8 (the database could
not store the name; the reason shows it with `\\xNN` escapes). Taken files that are not yet in a
batch then become one batch of content x style jobs (source `inbox:<name>`), written in the same
transaction that marks the files batched, so a crash leaves both or neither; the batch is then
sent to the workers.

The beat reads the configuration and sends it with every scan (`scheduler.schedule`), so the
workers that run the scans need not have `ATELIER_INBOXES` themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from celery import Celery
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from atelier.batches import ingest_image, printable_name, send_plan, write_nst_batch
from atelier.db import session_scope
from atelier.errors import AtelierError, InputError
from atelier.models import Asset, InboxFile
from atelier.schemas import NSTParams
from atelier.settings import Settings
from scheduler.locks import exclusive

log = logging.getLogger(__name__)
_SHA256_LEN = 64
_PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", "~")
InboxName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,57}$")]


class InboxConfigError(AtelierError):
    """`ATELIER_INBOXES` cannot be read or does not describe valid inboxes."""


class Inbox(BaseModel):
    """One watched folder and what to do with the images dropped in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: InboxName
    folder: Path
    styles: list[str] = Field(min_length=1)
    params: NSTParams = NSTParams()
    settle_seconds: float = Field(
        2.0, ge=0, description="A file must be unchanged this long before it is taken."
    )

    @property
    def source(self) -> str:
        return f"inbox:{self.name}"


@dataclass
class ScanReport:
    inbox: str
    taken: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    batch_id: int | None = None
    job_ids: list[int] = field(default_factory=list)
    skipped: bool = False  # another scan of this inbox was running


def load_inboxes(settings: Settings) -> list[Inbox]:
    """The configured inboxes; [] when none. Raises InboxConfigError with the reason."""
    spec = (settings.inboxes or "").strip()
    if not spec:
        return []
    try:
        if spec.startswith(("{", "[")):
            raw: Any = json.loads(spec)
        else:
            path = Path(spec).expanduser()
            content = path.read_text()
            raw = tomllib.loads(content) if path.suffix == ".toml" else json.loads(content)
    except (OSError, ValueError) as error:
        raise InboxConfigError(f"cannot read ATELIER_INBOXES ({spec[:200]}): {error}") from error
    if isinstance(raw, dict):
        raw = [{"name": name, **body} for name, body in raw.items() if isinstance(body, dict)]
    if not isinstance(raw, list):
        raise InboxConfigError("ATELIER_INBOXES must map inbox names to their settings")
    try:
        inboxes = [Inbox.model_validate(item) for item in raw]
    except ValidationError as error:
        raise InboxConfigError(f"invalid inbox in ATELIER_INBOXES: {error}") from error
    names = [inbox.name for inbox in inboxes]
    if len(set(names)) != len(names):
        raise InboxConfigError(f"inbox names must be unique: {names}")
    return inboxes


def scan_inboxes(
    settings: Settings, app: Celery, inboxes: Sequence[Inbox] | None = None
) -> list[ScanReport]:
    """Scan `inboxes` once, by default the ones `settings` configure (see the module
    docstring); the files remembered of inboxes no longer configured are forgotten."""
    reports = []
    scanned = load_inboxes(settings) if inboxes is None else inboxes
    names = {inbox.name for inbox in scanned}
    for key in [key for key in _known if key[0] not in names]:
        del _known[key]
    for inbox in scanned:
        try:
            reports.append(scan_inbox(settings, app, inbox))
        except AtelierError as error:  # a bad style or parameter: the next scan tries again
            log.error("inbox %s: %s", inbox.name, error)
            reports.append(ScanReport(inbox.name))
    return reports


def scan_inbox(settings: Settings, app: Celery, inbox: Inbox) -> ScanReport:
    report = ScanReport(inbox.name)
    with exclusive(settings, inbox.source) as held:
        if not held:
            report.skipped = True
            return report
        _take_new_files(settings, inbox, report)
        _batch_taken_files(settings, app, inbox, report)
    return report


# Files this process already recorded: (inbox, path) -> (size, mtime), so that a folder of old
# files is not hashed again on every scan. The database stays the authority. Each scan forgets
# the files no longer in the folder, and those of inboxes no longer configured, so the cache
# holds at most what the configured folders hold now.
_known: dict[tuple[str, str], tuple[int, int]] = {}


def _forget_gone(inbox: str, present: set[str]) -> None:
    for key in [key for key in _known if key[0] == inbox and key[1] not in present]:
        del _known[key]


def _candidates(inbox: Inbox) -> list[Path]:
    if not inbox.folder.is_dir():
        raise InputError(f"folder {inbox.folder} does not exist")
    settled_before = time.time() - inbox.settle_seconds
    found = []
    listing = sorted(inbox.folder.iterdir())
    _forget_gone(inbox.name, {str(path) for path in listing})
    for path in listing:
        name = path.name
        if name.startswith(".") or name.lower().endswith(_PARTIAL_SUFFIXES):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if not path.is_file() or stat.st_mtime > settled_before:
            continue
        if _known.get((inbox.name, str(path))) == (stat.st_size, stat.st_mtime_ns):
            continue
        found.append(path)
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _take_new_files(settings: Settings, inbox: Inbox, report: ScanReport) -> None:
    db_url = settings.resolved_database_url
    for path in _candidates(inbox):
        try:
            stat = path.stat()
            sha = _sha256(path)
        except OSError:  # removed while we looked
            continue
        with session_scope(db_url) as session:
            seen = session.scalar(
                select(InboxFile.id).where(InboxFile.inbox == inbox.name, InboxFile.sha256 == sha)
            )
        if seen is None:
            _take(settings, inbox, path, sha, report)
        _known[(inbox.name, str(path))] = (stat.st_size, stat.st_mtime_ns)


def _take(settings: Settings, inbox: Inbox, path: Path, sha: str, report: ScanReport) -> None:
    """Store the image and record the file, or record why it was refused; either way once."""
    name = printable_name(path.name)
    try:
        with session_scope(settings.resolved_database_url) as session:
            try:
                if name != path.name:
                    raise InputError(f"the file name {name!r} is not valid UTF-8; rename it")
                asset = ingest_image(session, settings, path, label=name)
            except InputError as error:
                row = InboxFile(inbox=inbox.name, name=name[:1024], sha256=sha, error=str(error))
                session.add(row)
                report.refused[name] = str(error)
                log.warning("inbox %s: refused %s: %s", inbox.name, name, error)
                return
            session.add(InboxFile(inbox=inbox.name, name=name[:1024], sha256=asset.sha256))
            report.taken.append(name)
    except IntegrityError:  # another scan recorded it first
        log.info("inbox %s: %s was already taken", inbox.name, name)
    except OSError as error:
        log.info("inbox %s: %s vanished (%s)", inbox.name, name, error)


def _style_shas(settings: Settings, inbox: Inbox) -> list[str]:
    """Styles as stored assets: a path is stored (once, by content), a sha must be known."""
    shas = []
    with session_scope(settings.resolved_database_url) as session:
        for style in inbox.styles:
            if len(style) == _SHA256_LEN and all(c in "0123456789abcdef" for c in style):
                if session.scalar(select(Asset.id).where(Asset.sha256 == style)) is None:
                    raise InputError(f"style {style[:12]} is not a stored asset")
                shas.append(style)
            else:
                path = Path(style).expanduser()
                if not path.is_file():
                    raise InputError(f"style {style} does not exist")
                shas.append(ingest_image(session, settings, path, label=path.name).sha256)
    return shas


def _batch_taken_files(settings: Settings, app: Celery, inbox: Inbox, report: ScanReport) -> None:
    """One batch for the taken files not in a batch yet (also those a crashed scan left)."""
    db_url = settings.resolved_database_url
    with session_scope(db_url) as session:
        pending = session.execute(
            select(InboxFile.id, InboxFile.sha256)
            .where(
                InboxFile.inbox == inbox.name,
                InboxFile.batch_id.is_(None),
                InboxFile.error.is_(None),
            )
            .order_by(InboxFile.id)
        ).all()
    if not pending:
        return
    contents = list(dict.fromkeys(row.sha256 for row in pending))
    styles = _style_shas(settings, inbox)
    with session_scope(db_url) as session:
        plan = write_nst_batch(
            session,
            settings,
            contents,
            styles,
            inbox.params,
            source=inbox.source,
            label=f"inbox {inbox.name}",
        )
        session.execute(
            update(InboxFile)
            .where(InboxFile.id.in_([row.id for row in pending]), InboxFile.batch_id.is_(None))
            .values(batch_id=plan.batch_id)
        )
    # Rows are committed: if this send is lost, the reaper re-sends the queued jobs.
    send_plan(app, settings, plan)
    report.batch_id = plan.batch_id
    report.job_ids = plan.job_ids
    log.info("inbox %s: batch %s with %d job(s)", inbox.name, plan.batch_id, len(plan.job_ids))
