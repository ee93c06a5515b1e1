"""Hatchling build hook: install the canvas's npm packages (litegraph) into web/node_modules.

Runs ``npm ci --omit=dev`` in web/ when web/node_modules is missing or older than
web/package-lock.json. A wheel (not an editable install) also gets the data Loom needs at
run time as ``loom/_shipped/``: the example workflows, the embedded models and the canvas. A machine without npm (or without network) still installs Loom:
the hook only logs a warning, and the server then shows a plain node list instead of the
canvas. Set LOOM_SKIP_NPM=1 to skip it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NPM_TIMEOUT_S = 600
MARKER = Path("node_modules") / ".package-lock.json"  # written by npm after every install
# What a wheel carries besides the packages (the canvas's own files and its litegraph build;
# not the rest of node_modules, not package.json).
SHIPPED = ("workflows", "models/embedded", "web/index.html", "web/css", "web/src",
           "web/node_modules/@comfyorg/litegraph")


def needs_install(web: Path) -> bool:
    """True when web/node_modules is missing or older than web/package-lock.json."""
    lock = web / "package-lock.json"
    if not lock.is_file():
        return False
    marker = web / MARKER
    if not marker.is_file():
        return True
    return marker.stat().st_mtime < lock.stat().st_mtime


def install_web_modules(web: Path, warn: Callable[[str], None], info: Callable[[str], None]) -> bool:
    """Run ``npm ci --omit=dev`` in ``web`` when needed; never raises. True when up to date."""
    if os.environ.get("LOOM_SKIP_NPM"):
        info("LOOM_SKIP_NPM is set: not installing the canvas's npm packages")
        return False
    if not needs_install(web):
        return True
    npm = shutil.which("npm")
    if npm is None:
        warn("npm was not found: the canvas's litegraph package is not installed. Install "
             "Node.js + npm and run `npm ci --omit=dev` in web/ (the API works without it).")
        return False
    info(f"installing the canvas's npm packages: npm ci --omit=dev in {web}")
    try:
        proc = subprocess.run([npm, "ci", "--omit=dev", "--no-audit", "--no-fund"], cwd=web,
                              capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        warn(f"npm ci in {web} did not complete ({exc}); the canvas will be missing until it does")
        return False
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        warn(f"npm ci in {web} failed (exit {proc.returncode}): " + " | ".join(tail))
        return False
    (web / MARKER).touch(exist_ok=True)
    return True


def add_shipped_data(root: Path, force_include: dict[str, str]) -> list[str]:
    """Map the run-time data folders into the wheel under loom/_shipped/; return the missing ones."""
    missing = []
    for rel in SHIPPED:
        src = root / rel
        if src.exists():
            force_include[str(src)] = f"loom/_shipped/{rel}"
        else:
            missing.append(rel)
    return missing


class WebAssetsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Installs web/node_modules before a wheel (or an editable install) is built."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Hatchling calls this before building; sdists are left alone."""
        if self.target_name == "sdist":
            return
        web = Path(self.root) / "web"
        if not web.is_dir():
            return
        install_web_modules(web, self.app.display_warning, self.app.display_info)
        if version == "standard":  # an editable install reads these from the repo itself
            missing = add_shipped_data(Path(self.root), build_data.setdefault("force_include", {}))
            for path in missing:
                self.app.display_warning(f"{path} is missing: the wheel is built without it")
