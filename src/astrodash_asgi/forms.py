"""Form bodies read as they stream in, with per-file and per-field limits enforced chunk by chunk.

Files are kept in memory (the request limit bounds them); a file that grows past ``max_file_bytes`` stops
the read at once with 413, long before the rest of the body arrives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

from .errors import ApiError, invalid, too_large


def size_text(n: int) -> str:
    """``52428800`` -> ``"50 MB"`` (binary megabytes, as the limits are set)."""
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"


@dataclass
class UploadedFile:
    field: str
    filename: str
    data: bytes
    content_type: str = ""


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def files_named(self, name: str) -> list[UploadedFile]:
        return [f for f in self.files if f.field == name]

    def file(self, name: str) -> UploadedFile | None:
        found = self.files_named(name)
        return found[0] if found else None

    def required_file(self, name: str, message: str) -> UploadedFile:
        """The file uploaded as ``name``; 422 naming the field with ``message`` when there is none."""
        upload = self.file(name)
        if upload is None:
            raise invalid(name, message)
        return upload


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """python-multipart callbacks that build a Form and enforce the limits."""

    def __init__(self, max_file_bytes: int, max_field_bytes: int, max_files: int, max_fields: int = 100,
                 max_fields_bytes: int = 4 * 1024 * 1024):
        self.form = Form()
        self.limits = (max_file_bytes, max_field_bytes, max_files)
        self.max_fields, self.max_fields_bytes = max_fields, max_fields_bytes
        self.n_fields = self.fields_bytes = 0
        self.part = _Part()
        self._hname = bytearray()
        self._hvalue = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished}

    def on_part_begin(self):
        self.part = _Part()

    def on_header_field(self, data, start, end):
        self._hname += data[start:end]

    def on_header_value(self, data, start, end):
        self._hvalue += data[start:end]

    def on_header_end(self):
        self.part.headers[bytes(self._hname).lower()] = bytes(self._hvalue)
        self._hname.clear()
        self._hvalue.clear()

    def on_headers_finished(self):
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise ApiError(400, "malformed multipart body: a part has no name")
        self.part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
            if len(self.form.files) >= self.limits[2]:
                raise too_large(f"too many files: at most {self.limits[2]} per request")
        else:
            self.n_fields += 1
            if self.n_fields > self.max_fields:
                raise too_large(f"too many form fields: at most {self.max_fields} per request")

    def on_part_data(self, data, start, end):
        part = self.part
        part.data += data[start:end]
        if part.filename is None:
            self.fields_bytes += end - start
            if self.fields_bytes > self.max_fields_bytes:
                raise too_large(f"form fields exceed {size_text(self.max_fields_bytes)} in total")
        limit = self.limits[0] if part.filename is not None else self.limits[1]
        if len(part.data) > limit:
            what = f"file {part.filename!r}" if part.filename is not None else f"field {part.name!r}"
            raise too_large(f"{what} exceeds the limit of {size_text(limit)}")

    def on_part_end(self):
        part = self.part
        if part.filename is not None:
            ctype = part.headers.get(b"content-type", b"").decode("latin-1")
            self.form.files.append(UploadedFile(part.name, part.filename, bytes(part.data), ctype))
        else:
            self.form.fields.setdefault(part.name, []).append(part.data.decode("utf-8", "replace"))


async def read_small_body(request: Request, limit: int) -> bytes:
    """The whole body of a request that should be small (JSON), 413 past ``limit``."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(f"request body exceeds the limit of {size_text(limit)} for this endpoint")
    return bytes(body)


async def read_form(request: Request, max_file_bytes: int, max_field_bytes: int, max_files: int,
                    max_fields: int = 100, max_fields_bytes: int = 4 * 1024 * 1024) -> Form:
    """The request's multipart or urlencoded form (an empty Form for any other body); 413 past the limits on
    file size, field size, number of files, number of fields and the fields' total size."""
    media, options = parse_options_header(request.headers.get("content-type", ""))
    if media == b"application/x-www-form-urlencoded":
        body = await read_small_body(request, min(max_field_bytes, max_fields_bytes))
        form = Form()
        try:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=max_fields)
        except ValueError:
            raise too_large(f"too many form fields: at most {max_fields} per request") from None
        for k, v in pairs:
            form.fields.setdefault(k, []).append(v)
        return form
    if media != b"multipart/form-data":
        return Form()
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "malformed multipart body: no boundary")
    collector = _Collector(max_file_bytes, max_field_bytes, max_files, max_fields, max_fields_bytes)
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, f"malformed multipart body ({exc})") from None
    return collector.form
