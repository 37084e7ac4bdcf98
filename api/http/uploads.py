"""Receive an upload into storage without ever holding it in memory or keeping a refused file.

The body (raw, or the `file` part of a multipart form, parsed as it streams) is written into a
private store inside the storage's scratch area, with the size limit enforced while it arrives.
Only when the file has passed every check (type sniffed from its bytes, image header and pixel
count read by `atelier.media`, a video's frame size read from its header by `atelier.video_header`)
is it renamed into the real store, so a refused upload — too big, not an image, a decompression
bomb — leaves nothing behind, and a half-received one is never seen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.from_thread
from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from api.http.errors import ApiError
from atelier.errors import InputError
from atelier.media import probe_image
from atelier.sniff import Sniffed, sniff_file
from atelier.storage import Storage, StoredFile
from atelier.video_header import check_frame_pixels, header_report, parse_header

UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "description": "The file itself as the body, or a multipart form with a `file` field.",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


MAX_FIELD_BYTES = 64 * 1024
"""Largest form field besides `file`: nothing else is read, so nothing else needs to be big."""


@dataclass
class Received:
    stored: StoredFile
    sniffed: Sniffed
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    filename: str | None = None


class _MultipartFile:
    """The bytes of the form's `file` part, parsed incrementally from the request stream."""

    def __init__(self, request: Request, boundary: bytes) -> None:
        self.request = request
        self.boundary = boundary
        self.filename: str | None = None
        self.found = False
        self._in_file = False
        self._done = False
        self._data: list[bytes] = []
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._field_bytes = 0

    def _on_part_begin(self) -> None:
        self._disposition = b""
        self._in_file = False
        self._field_bytes = 0

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == b"file" and not self.found:
            self.found = self._in_file = True
            raw = options.get(b"filename")
            # The name is only a default label; NUL cannot be stored (PostgreSQL text).
            name = raw.decode("utf-8", "replace").replace("\x00", "") if raw else ""
            self.filename = name[:255] or None

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._data.append(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELD_BYTES:
            raise ApiError(
                413, f"a form field other than `file` is larger than {MAX_FIELD_BYTES} bytes"
            )

    def _on_part_end(self) -> None:
        self._in_file = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        callbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }
        parser = MultipartParser(self.boundary, callbacks)  # type: ignore[arg-type]
        try:
            async for chunk in self.request.stream():
                parser.write(chunk)
                if self._data:
                    yield b"".join(self._data)
                    self._data.clear()
            parser.finalize()
        except (ApiError, ClientDisconnect):
            raise
        except Exception as error:  # the parser's own error classes vary
            raise ApiError(400, f"malformed multipart body: {error}") from error
        if self._data:
            yield b"".join(self._data)
        if not self.found:
            raise ApiError(422, "a multipart upload needs its file in a field named `file`")


class _ThreadReader:
    """A blocking `read()` over the request's async stream, for `Storage.put_stream` running in
    a worker thread (so hashing and disk writes never block the event loop)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = aiter(chunks)
        self.received = 0

    async def _next(self) -> bytes:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return b""

    def read(self, _size: int = -1) -> bytes:
        chunk = anyio.from_thread.run(self._next)
        self.received += len(chunk)
        return chunk


def _check_and_store(
    storage: Storage, reader: _ThreadReader, max_bytes: int, max_pixels: int, max_video_pixels: int
) -> Received:
    with storage.scratch("upload") as folder:
        try:
            staged = Storage(folder).put_stream(reader, max_bytes)  # type: ignore[arg-type]
        except InputError as error:
            if reader.received > max_bytes:
                raise ApiError(413, f"the upload is larger than {max_bytes} bytes") from error
            raise
        sniffed = sniff_file(staged.path)
        if sniffed is None:
            raise ApiError(
                415,
                "not a supported file: send a JPEG, PNG, GIF, WebP, BMP or TIFF image, or an "
                "MP4, MOV, WebM, MKV or AVI video (the type is read from the content)",
            )
        received = Received(staged, sniffed)
        if sniffed.kind == "image":
            info = probe_image(staged.path, max_pixels)  # header first: bombs never decode
            received.sniffed = Sniffed("image", info.media_type or sniffed.media_type)
            received.width, received.height = info.width, info.height
        else:  # a video: size and duration from its header, before anything decodes a frame
            header = parse_header(header_report(staged.path))
            check_frame_pixels(header, max_video_pixels, "the video")
            received.width, received.height = header.width, header.height
            received.duration = header.duration
        received.stored = storage.adopt(staged.path)
        return received


async def receive_upload(
    request: Request, storage: Storage, max_bytes: int, max_pixels: int, max_video_pixels: int
) -> Received:
    """Stream the request's file into `storage` (see the module docstring); raises ApiError
    (413, 415, 422, 400) or InputError (422) when the file is refused."""
    declared = request.headers.get("content-length")
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    multipart = content_type == b"multipart/form-data"
    if declared and declared.isdigit() and not multipart and int(declared) > max_bytes:
        raise ApiError(413, f"the upload is larger than {max_bytes} bytes")
    if multipart:
        boundary = options.get(b"boundary")
        if not boundary:
            raise ApiError(400, "multipart body without a boundary")
        source = _MultipartFile(request, boundary)
        reader = _ThreadReader(source.__aiter__())
    else:
        source = None
        reader = _ThreadReader(request.stream())
    received = await anyio.to_thread.run_sync(
        _check_and_store, storage, reader, max_bytes, max_pixels, max_video_pixels
    )
    received.filename = source.filename if source is not None else None
    return received
