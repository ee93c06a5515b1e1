"""``loom serve``: registered into the ``loom`` command through the ``loom.commands`` group."""
from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RayOptions, ServerConfig, is_loopback

if TYPE_CHECKING:
    from loom import Settings


def register(subparsers: "argparse._SubParsersAction[Any]",
             parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand (``parents`` carry the shared --home/--device/... flags)."""
    p = subparsers.add_parser("serve", parents=parents, help="serve the canvas and the HTTP API",
                              description="Serve the canvas and the HTTP + WebSocket API.")
    add_serve_flags(p)
    p.set_defaults(func=serve_main)


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``serve`` itself."""
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; anything else needs a token)")
    p.add_argument("--listen", nargs="?", const="0.0.0.0", default=None, metavar="ADDR",
                   help="listen on ADDR (default 0.0.0.0) instead of --host; a token is "
                        "generated and printed unless --token is given")
    p.add_argument("--port", type=int, default=8188, help="port (default 8188)")
    p.add_argument("--token", default=None, help="access token clients must send")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload (MB)")
    p.add_argument("--max-body-mb", type=float, default=16.0, help="largest JSON body (MB)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="another browser origin allowed to change state (repeatable)")
    ray = p.add_argument_group("scale-out with Ray (pip install 'loom[ray]')")
    ray.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                     help="run workflows on Ray actors: 'auto' (the default when the flag is "
                          "bare) attaches to a local Ray or starts one; or a cluster ADDRESS")
    ray.add_argument("--ray-workers", type=int, default=None, metavar="N",
                     help="GPU actors (num_gpus=1 each; default: one per GPU of the cluster)")
    ray.add_argument("--ray-cpu-workers", type=int, default=None, metavar="N",
                     help="CPU actors, each with its share of the CPUs as torch threads "
                          "(default: 1 when there are no GPU actors)")


def _common_parent() -> argparse.ArgumentParser:
    """The shared flags, for ``python -m loom_server`` (``loom serve`` gets them from loom.cli)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--home", type=Path, default=None, help="home folder (default: cwd)")
    p.add_argument("--models-dir", type=Path, action="append", default=[], help="extra model root")
    p.add_argument("--custom-nodes", type=Path, action="append", default=[],
                   help="extra custom_nodes folder")
    p.add_argument("--output-dir", type=Path, default=None, help="where outputs are saved")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda[:N], mps")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16, bf16")
    p.add_argument("--vram-budget-gb", type=float, default=None,
                   help="GPU memory loaded models may use before the least recently used go to CPU RAM")
    p.add_argument("--ram-budget-gb", type=float, default=None,
                   help="CPU RAM loaded models and cached outputs may use (default: half the RAM)")
    return p


def settings_from_namespace(ns: argparse.Namespace) -> "Settings":
    """Settings from the shared flags (loom.cli's builder under ``loom serve``)."""
    if not getattr(ns, "standalone", False):
        try:
            from loom.cli import settings_from_args
        except ImportError:
            pass
        else:
            return settings_from_args(ns)
    from loom.settings import Settings
    return Settings(home=ns.home or Path.cwd(), models_dirs=list(ns.models_dir or []),
                    custom_nodes_dirs=list(ns.custom_nodes or []), output_dir=ns.output_dir,
                    device=ns.device or "auto", precision=ns.precision or "auto",
                    vram_budget_gb=getattr(ns, "vram_budget_gb", None),
                    ram_budget_gb=getattr(ns, "ram_budget_gb", None))


def serve_main(ns: argparse.Namespace) -> int:
    """Run the server until Ctrl-C; returns the exit code."""
    from aiohttp import web

    from .app import create_app
    host = ns.listen or ns.host
    token = ns.token
    if not token and not is_loopback(host):
        token = secrets.token_urlsafe(24)
        print(f"listening on {host}: generated access token {token}", flush=True)
    ray = None
    if ns.ray is not None:
        ray = RayOptions(address=ns.ray, gpu_workers=ns.ray_workers, cpu_workers=ns.ray_cpu_workers)
    elif ns.ray_workers is not None or ns.ray_cpu_workers is not None:
        print("loom serve: --ray-workers and --ray-cpu-workers need --ray", file=sys.stderr)
        return 2
    config = ServerConfig(host=host, port=ns.port, token=token, max_upload_mb=ns.max_upload_mb,
                          max_body_mb=ns.max_body_mb, allowed_origins=list(ns.allow_origin),
                          ray=ray)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        config.check()
        settings = settings_from_namespace(ns)
        app = create_app(settings, config)
    except ValueError as exc:
        print(f"loom serve: {exc}", file=sys.stderr)
        return 2
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{ns.port}/" + (f"?token={token}" if token else "")
    try:
        web.run_app(app, host=host, port=ns.port, access_log=None, handle_signals=True,
                    print=lambda _msg: print(f"Loom is serving at {url}", flush=True))
    except OSError as exc:
        print(f"loom serve: cannot listen on {host}:{ns.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m loom_server [flags]``."""
    parser = argparse.ArgumentParser(prog="python -m loom_server", parents=[_common_parent()],
                                     description="Serve the canvas and the HTTP + WebSocket API.")
    add_serve_flags(parser)
    parser.set_defaults(standalone=True)
    return serve_main(parser.parse_args(argv))
