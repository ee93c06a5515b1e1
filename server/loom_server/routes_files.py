"""Output/preview/upload files, image uploads, and the web canvas as static files."""
from __future__ import annotations

import asyncio
import hashlib
import html
import io
import mimetypes
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from loom.settings import shipped

from .security import ApiError, safe_join
from .state import CONFIG, SETTINGS, ready_worker

routes = web.RouteTableDef()
FILE_KINDS = ("output", "upload", "preview")
UPLOAD_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}
_NAME_SAFE = re.compile(r"[^\w\-. ]+")
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
                "Cache-Control": "no-cache"}

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/json", ".map")
mimetypes.add_type("text/css", ".css")


def web_root(request: web.Request) -> Path:
    """The folder of the canvas: ServerConfig.web_dir, else the web/ Loom ships."""
    return request.app[CONFIG].web_dir or shipped("web")


def _kind_root(request: web.Request, kind: str) -> Path:
    settings = request.app[SETTINGS]
    roots = {"output": settings.outputs, "upload": settings.inputs, "preview": settings.previews}
    if kind not in roots:
        raise ApiError(404, f"unknown file kind {kind!r} (kinds: {', '.join(FILE_KINDS)})")
    return roots[kind]


@routes.get("/api/files/{kind}/{path:.+}")
async def get_file(request: web.Request) -> web.FileResponse:
    """A saved output, an uploaded image or a preview; never a file outside its folder."""
    root = _kind_root(request, request.match_info["kind"])
    target = safe_join(root, request.match_info["path"], request.raw_path)
    return web.FileResponse(target, headers=FILE_HEADERS)


def _clean_name(filename: str, ext: str) -> str:
    stem = Path(filename.replace("\\", "/").rsplit("/", 1)[-1]).stem
    stem = _NAME_SAFE.sub("_", stem).strip(" .")[:80] or "upload"
    return stem + ext


def _decode_image(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) of image bytes that fully decode; ApiError otherwise."""
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (w, h) = im.format or "", im.size
                if w * h > max_pixels:
                    raise ApiError(413, f"the image is {w}x{h} = {w * h} pixels, over the pixel "
                                        f"limit of {max_pixels} pixels")
                if fmt not in UPLOAD_FORMATS:
                    raise ApiError(415, f"image format {fmt or 'unknown'} is not accepted "
                                        f"(accepted: {', '.join(UPLOAD_FORMATS)})")
                im.load()
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # PIL refuses huge headers itself, before the size check above can run
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
        raise ApiError(413, f"the image is over the pixel limit of {limit} pixels") from None
    except UnidentifiedImageError:
        raise ApiError(415, "the upload is not an image that can be decoded") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ApiError(415, f"the image does not decode: {exc}") from None
    return fmt, w, h


def _store_upload(folder: Path, name: str, data: bytes, overwrite: bool) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    stem, ext = target.stem, target.suffix
    n = 1
    while target.exists() and not overwrite:
        if hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest():
            return target.name  # the same picture again: reuse it
        target = folder / f"{stem}_{n}{ext}"
        n += 1
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target.name


@routes.post("/api/uploads")
async def upload(request: web.Request) -> web.Response:
    """Multipart image upload (field "image"; "overwrite"=true replaces) → {name, width, height}."""
    config = request.app[CONFIG]
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "send the image as multipart/form-data with a field named \"image\"")
    if request.content_length is not None and request.content_length > config.upload_limit + 65536:
        raise ApiError(413, f"the upload is {request.content_length} bytes; "
                            f"the limit is {config.upload_limit} bytes")
    data, filename, overwrite = await _read_form(request, config.upload_limit)
    if data is None:
        raise ApiError(400, "no file in the upload: send a multipart field \"image\" with a filename")
    loop = asyncio.get_running_loop()
    fmt, w, h = await loop.run_in_executor(None, _decode_image, data, config.max_image_pixels)
    ext = Path(filename).suffix.lower()
    if ext not in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif") or (
            UPLOAD_FORMATS[fmt] != ext and not (fmt == "JPEG" and ext == ".jpeg")):
        ext = UPLOAD_FORMATS[fmt]
    name = await loop.run_in_executor(None, _store_upload, request.app[SETTINGS].inputs,
                                      _clean_name(filename, ext), data, overwrite)
    return web.json_response({"name": name, "width": w, "height": h, "format": fmt.lower()},
                             status=201)


async def _read_form(request: web.Request, limit: int) -> tuple[bytes | None, str, bool]:
    """(the first file's bytes, its name, overwrite) of a multipart body; 400 when malformed."""
    try:
        reader = await request.multipart()
    except (KeyError, ValueError):  # aiohttp: no boundary parameter / a boundary over 70 chars
        raise ApiError(400, "the multipart Content-Type needs a boundary of 1 to 70 characters, "
                            f"got {request.headers.get('Content-Type', '')!r}") from None
    data, filename, overwrite = None, "", False
    try:
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.filename is not None and data is None:
                filename = unquote(part.filename)
                if "\x00" in filename:
                    raise ApiError(400, f"the file name {filename!r} contains a NUL byte")
                data = await _read_part(part, limit)
            elif part.name == "overwrite":
                overwrite = (await part.text()).strip().lower() in ("1", "true", "yes")
            else:
                await part.release()
    except ValueError as exc:  # aiohttp: a cut-off body, a missing boundary line, bad headers
        raise ApiError(400, f"the multipart body is malformed or cut short: {exc}") from None
    return data, filename, overwrite


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(1 << 16):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# --- the canvas -------------------------------------------------------------------
def _static(root: Path, rel: str, raw_path: str) -> web.FileResponse:
    if any(p.startswith(".") for p in rel.split("/")):
        raise ApiError(404, f"no such file: {rel}")
    target = safe_join(root, rel, raw_path)
    return web.FileResponse(target, headers={"Cache-Control": "no-cache",
                                             "X-Content-Type-Options": "nosniff"})


@routes.get("/vendor/litegraph/{path:.+}")
async def litegraph(request: web.Request) -> web.FileResponse:
    """The litegraph library installed by npm into web/node_modules."""
    root = web_root(request) / "node_modules" / "@comfyorg" / "litegraph" / "dist"
    return _static(root, request.match_info["path"], request.raw_path)


@routes.get("/")
async def index(request: web.Request) -> web.StreamResponse:
    """web/index.html, or a plain list of the nodes when the canvas is not there."""
    page = web_root(request) / "index.html"
    if page.is_file():
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})
    worker = await ready_worker(request)
    schemas = worker.registry.schemas(request.app[SETTINGS])  # type: ignore[union-attr]
    return web.Response(text=_node_list_html(schemas), content_type="text/html")


@routes.get("/{path:(?!api/|api$).+}")
async def static_file(request: web.Request) -> web.FileResponse:
    """Any other file of web/ (not node_modules, not dot files); never shadows /api."""
    rel = request.match_info["path"]
    if rel.split("/", 1)[0] == "node_modules":
        raise ApiError(404, f"no such file: {rel} (litegraph is served at /vendor/litegraph/)")
    return _static(web_root(request), rel, request.raw_path)


def _node_list_html(schemas: list[dict[str, Any]]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(s['category'])}</td><td><code>{html.escape(s['id'])}</code></td>"
        f"<td>{html.escape(s['description'])}</td></tr>" for s in schemas)
    return ("<!doctype html><html><head><meta charset=utf-8><title>Loom</title></head><body>"
            "<h1>Loom</h1><p>The canvas (web/index.html) is not installed; the API is at "
            "<a href=/api/openapi.json>/api/openapi.json</a>.</p>"
            f"<table><tr><th>category</th><th>node</th><th>description</th></tr>{rows}</table>"
            "</body></html>")
