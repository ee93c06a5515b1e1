"""Safe by default: JSON errors, access token, Host and Origin checks, bounded bodies, safe paths."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from loom.errors import WorkflowFileError
from loom.workflow import parse_json

from .config import ServerConfig, is_loopback

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_COOKIE = "loom_token"
TOKEN_HEADER = "X-Loom-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """A JSON error response: ``{"error": message, ...extra}``."""
    return web.json_response({"error": message, **extra}, status=status)


class ApiError(web.HTTPException):
    """An HTTP error whose body is JSON ``{"error": ..., ...}``; raise it from handlers."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status_code = status
        super().__init__(text=json.dumps({"error": message, **extra}),
                         content_type="application/json")
        self.message = message


def error_middleware() -> Any:
    """Every error becomes JSON with a message; unexpected ones are logged and answered 500."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Turn exceptions into JSON errors."""
        try:
            return await handler(request)
        except ApiError:
            raise
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            message = _message_for(exc, request)
            resp = json_error(exc.status, message)
            for key in ("Allow", "Location"):
                if key in exc.headers:
                    resp.headers[key] = exc.headers[key]
            return resp
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception as exc:  # noqa: BLE001 - the server keeps serving
            log.exception("unhandled error in %s %s", request.method, request.path)
            return json_error(500, f"internal error: {type(exc).__name__}: {exc}")

    return middleware


def _message_for(exc: web.HTTPException, request: web.Request) -> str:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {request.method} is not allowed on {request.path} (allowed: {allowed})"
    if isinstance(exc, web.HTTPNotFound):
        text = exc.text or ""
        return text if text and not text.startswith("404") else f"no such path: {request.path}"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return "the request body is too large"
    return exc.text or exc.reason


def guard_middleware(config: ServerConfig) -> Any:
    """Host check (DNS rebinding), access token, and Origin check for state changes."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse what the rules refuse, then call the handler."""
        host = request.host or ""
        if not config.token and not is_loopback(_hostname(host)):
            return json_error(403, f"Host {host!r} is not allowed: this server only answers "
                                   "loopback names (127.0.0.1, localhost) unless it has a token")
        set_cookie = False
        if config.token:
            given, from_query = _token_of(request)
            if given is None or not hmac.compare_digest(given.encode(), config.token.encode()):
                what = "a wrong access token" if given is not None else "no access token"
                return json_error(401, f"{what}: send it as 'Authorization: Bearer TOKEN', the "
                                       f"{TOKEN_HEADER} header, the {TOKEN_COOKIE} cookie or "
                                       "?token= (printed when the server started)")
            set_cookie = from_query
        origin = request.headers.get("Origin")
        cors = origin is not None and origin in config.allowed_origins
        if cors and request.method == "OPTIONS":
            return web.Response(status=204, headers=_cors_headers(origin, preflight=True))
        if request.method not in SAFE_METHODS or _is_websocket(request):
            refusal = _origin_refusal(request, config)
            if refusal:
                return json_error(403, refusal)
        response = await handler(request)
        if cors and not response.prepared:
            response.headers.update(_cors_headers(origin, preflight=False))
        if set_cookie and config.token and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="Strict",
                                path="/")
        return response

    return middleware


def _cors_headers(origin: str | None, preflight: bool) -> dict[str, str]:
    """CORS headers for an origin listed with --allow-origin (no others get any)."""
    headers = {"Access-Control-Allow-Origin": origin or "", "Vary": "Origin",
               "Access-Control-Allow-Credentials": "true"}
    if preflight:
        headers.update({"Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
                        "Access-Control-Allow-Headers": f"Content-Type, Authorization, {TOKEN_HEADER}",
                        "Access-Control-Max-Age": "600"})
    return headers


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _token_of(request: web.Request) -> tuple[str | None, bool]:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    if TOKEN_HEADER in request.headers:
        return request.headers[TOKEN_HEADER], False
    if TOKEN_COOKIE in request.cookies:
        return request.cookies[TOKEN_COOKIE], False
    if "token" in request.query:
        return request.query["token"], True
    return None, False


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _origin_refusal(request: web.Request, config: ServerConfig) -> str | None:
    """Why a state-changing request's Origin is refused, or None when it may proceed."""
    origin = request.headers.get("Origin")
    if origin is None:
        site = request.headers.get("Sec-Fetch-Site")
        if site in ("cross-site", "same-site"):
            return f"cross-site request refused (Sec-Fetch-Site: {site})"
        return None  # not a browser (curl, scripts, the CLI)
    if origin in config.allowed_origins:
        return None
    try:
        parts = urlsplit(origin)
        port = parts.port  # raises for 'http://127.0.0.1:8320.evil.com' or a port over 65535
    except ValueError:
        return f"request from a malformed Origin {origin!r} refused"
    if origin == "null" or not parts.scheme or not parts.netloc:
        return f"request from Origin {origin!r} refused"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    origin_host = f"{parts.hostname}:{port or default}".lower()
    host = (request.host or "").lower()
    if ":" not in host.rsplit("]", 1)[-1]:
        host = f"{host}:{80 if request.scheme == 'http' else 443}"
    host = host.replace("[", "").replace("]", "")
    if origin_host != host:
        return (f"request from a foreign Origin {origin!r} refused (this server is "
                f"{request.host}); pass --allow-origin to permit it")
    return None


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the request body is {request.content_length} bytes; "
                            f"the limit is {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int) -> Any:
    """The JSON body, parsed off the event loop (see ``parse_json_body``)."""
    data = await read_body(request, limit)
    return await asyncio.get_running_loop().run_in_executor(None, parse_json_body, data)


def parse_json_body(data: bytes) -> Any:
    """A request body's JSON within loom's limits (``loom.workflow.parse_json``: nesting
    depth, number length, UTF-8), else 400 naming what is wrong. Slow for large bodies:
    call it off the event loop."""
    if not data.strip():
        raise ApiError(400, "the request body is empty; send JSON")
    try:
        return parse_json(data, "the request body")
    except WorkflowFileError as exc:
        raise ApiError(400, str(exc)) from None


def safe_join(root: Path, rel: str, raw_path: str = "") -> Path:
    """``root/rel`` resolved (symlinks too) and checked to stay inside ``root``; else 400/404."""
    if _ENCODED_SEPARATOR.search(raw_path):
        raise ApiError(400, "encoded path separators are not allowed in file paths")
    if not rel or "\x00" in rel or "\\" in rel:
        raise ApiError(400, f"bad file path {rel!r}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", rel):
        raise ApiError(400, f"file path {rel!r} must be relative and stay inside its folder")
    base = root.resolve()
    target = (base / pure).resolve()
    if not target.is_relative_to(base):
        raise ApiError(403, f"file path {rel!r} leads outside its folder")
    if not target.is_file():
        raise ApiError(404, f"no such file: {rel}")
    return target
