"""History from the server: survives a reload, thumbnails, durations, Open / Re-queue / Delete."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from web_helpers import NEW_FINAL_RUN_JS, RUN_IDS_JS, exported, open_workflow, tiny_workflow

THUMB_READY = """(id) => {
  const img = document.querySelector(`#history-list li[data-run='${id}'] .thumb img`);
  return !!img && img.complete && img.naturalWidth > 0;
}"""

GALLERY_READY = """() => [...document.querySelectorAll('#gallery figure img')]
  .some((i) => i.complete && i.naturalWidth > 0)"""


def _run_and_reload(canvas: Any, tmp_path: Path, prefix: str) -> str:
    open_workflow(canvas, tiny_workflow(solid__color="blue", save__prefix=prefix), tmp_path)
    canvas.click("#btn-queue")
    canvas.wait_for_function("window.loom.nodeById('save').loom.images.length > 0")
    run_id = canvas.evaluate("window.loom.runs.current")
    canvas.wait_for_selector(f"#run-list li.finished[data-run='{run_id}']")
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    return run_id


def test_history_survives_a_reload_with_thumbnail_duration_and_gallery(canvas: Any, tmp_path: Path) -> None:
    run_id = _run_and_reload(canvas, tmp_path, "histreload")
    canvas.wait_for_function(GALLERY_READY)  # the gallery is refilled from the server's history
    canvas.click(".tabs button[data-tab='history']")
    entry = canvas.locator(f"#history-list li[data-run='{run_id}']")
    entry.wait_for()
    assert "finished" in (entry.get_attribute("class") or "")
    assert entry.locator(".status").text_content() == "finished"
    assert re.fullmatch(r"\d+\.\d s|\d+ m \d\d s", entry.locator(".duration").text_content() or "")
    canvas.wait_for_function(THUMB_READY, arg=run_id)
    for name in ("Open", "Re-queue", "Delete"):
        assert entry.locator(f"button:has-text('{name}')").count() == 1


def test_history_open_and_delete(canvas: Any, tmp_path: Path) -> None:
    run_id = _run_and_reload(canvas, tmp_path, "histopen")
    canvas.click("#btn-new")
    canvas.wait_for_function("!window.loom.nodeById('save')")
    canvas.click(".tabs button[data-tab='history']")
    entry = canvas.locator(f"#history-list li[data-run='{run_id}']")
    entry.locator("button:has-text('Open')").click()
    canvas.wait_for_function("(window.loom.nodeById('save')?.loom.images.length ?? 0) > 0")
    assert exported(canvas)["nodes"]["save"]["inputs"]["prefix"] == "histopen"

    before = canvas.evaluate(RUN_IDS_JS)
    entry.locator("button:has-text('Re-queue')").click()  # the same workflow, queued again
    new_id, _ = canvas.wait_for_function(NEW_FINAL_RUN_JS, arg=before).json_value()
    canvas.wait_for_selector(f"#history-list li[data-run='{new_id}']")  # on top once it ends

    entry.locator("button:has-text('Delete')").click()
    canvas.wait_for_selector(f"#history-list li[data-run='{run_id}']", state="detached")
    ids = canvas.evaluate("fetch('/api/runs?limit=200').then((r) => r.json()).then((b) => b.runs.map((r) => r.id))")
    assert run_id not in ids  # deleted on the server, not only hidden
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    assert canvas.locator(f"#history-list li[data-run='{run_id}']").count() == 0
