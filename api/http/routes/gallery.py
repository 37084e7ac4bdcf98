"""The gallery page (`GET /`), server-rendered, and the login form browsers use with a token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from api.http import session
from api.http.auth import token_matches
from api.http.brake import client_of
from api.http.deps import Services, services
from api.http.pages import PAGE_HEADERS
from atelier.read import (
    BatchSummary,
    JobOut,
    asset_labels,
    batch_jobs,
    job_inputs,
    jobs_out,
    list_batches,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
BATCHES_PER_PAGE = 10
TILES_PER_BATCH = 60

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES)


@dataclass
class Tile:
    job: JobOut
    caption: str
    thumbnail: str | None


@dataclass
class Card:
    batch: BatchSummary
    tiles: list[Tile]
    hidden: int


def _tiles(session: Session, batch_id: int) -> tuple[list[Tile], int]:
    jobs = batch_jobs(session, batch_id)
    shown = jobs[:TILES_PER_BATCH]
    labels = asset_labels(session, {sha for job in shown for sha in job_inputs(job)})
    tiles = []
    for job, out in zip(shown, jobs_out(session, shown), strict=True):
        inputs = job_inputs(job)
        if job.kind == "nst":
            styles = job.inputs.get("styles", [])
            style = labels.get(styles[0], "?") if len(styles) == 1 else "blend"
            content = labels.get(job.inputs.get("content", ""), "?")
            caption = f"{content} \N{MULTIPLICATION SIGN} {style}"
        else:
            caption = labels.get(inputs[0], "?") if inputs else job.kind
        if out.result is not None:
            thumbnail = out.result.thumbnail_url
        else:
            thumbnail = f"/v1/assets/{inputs[0]}/thumbnail" if inputs else None
        tiles.append(Tile(out, caption, thumbnail))
    return tiles, len(jobs) - len(shown)


@router.get("/", response_class=HTMLResponse)
def gallery(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    with svc.session() as session:
        listing = list_batches(session, BATCHES_PER_PAGE, (page - 1) * BATCHES_PER_PAGE)
        cards = [Card(batch, *_tiles(session, batch.id)) for batch in listing.items]
    return templates.TemplateResponse(
        request,
        "gallery.html",
        {
            "cards": cards,
            "page": page,
            "has_next": listing.next_offset is not None,
            "total": listing.total,
            "newest": listing.items[0].id if listing.items and page == 1 else 0,
            "token_required": bool(svc.settings.api_token),
        },
        headers=PAGE_HEADERS,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    if not services(request).settings.api_token:
        return RedirectResponse("/", status_code=303)
    return templates.TemplateResponse(request, "login.html", {"error": None}, headers=PAGE_HEADERS)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, token: Annotated[str, Form(max_length=4096)] = "") -> Response:
    """Check the token once and give the browser a session cookie (`api.http.session`) that the
    gallery's page and images send; wrong tokens count against the client's brake."""
    svc = services(request)
    expected = svc.settings.api_token
    if not expected:
        return RedirectResponse("/", status_code=303)
    client = client_of(request.scope)
    wait = svc.brake.retry_after(client)
    if wait is not None:
        return _login_page(
            request,
            f"Too many wrong tokens from your address; try again in {wait} s.",
            429,
            {"Retry-After": str(wait)},
        )
    if not token_matches(expected, token):
        svc.brake.failed(client)
        return _login_page(request, "That token is wrong.", 403)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        session.COOKIE,
        session.issue(expected, svc.settings.session_seconds),
        max_age=svc.settings.session_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _login_page(
    request: Request, error: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"error": error},
        status_code=status,
        headers={**PAGE_HEADERS, **(headers or {})},
    )


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(session.COOKIE)
    return response
