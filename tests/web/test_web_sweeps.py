"""The evaluation studio in the canvas: sweep a widget, queue the cells, open the grid, rate
images with the keyboard, and choose between blind A/B pairs (issue 18)."""
from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from web_helpers import exported, open_workflow, settle, tiny_workflow, widget_xy


BADGE_PIXEL_JS = """([id, name]) => {
  const node = window.loom.nodeById(id);
  const w = node.widgets.find((w) => w.name === name);
  const c = window.loom.canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] + 8, node.pos[1] + w.y + 10]);
  const ratio = window.devicePixelRatio || 1;
  const d = window.loom.canvas.canvas.getContext('2d').getImageData(c[0] * ratio, c[1] * ratio, 1, 1).data;
  return [d[0], d[1], d[2]];
}"""


def _right_click_widget(page: Any, node: str, name: str) -> None:
    x, y = widget_xy(page, node, name, 0.3)
    page.mouse.click(x, y, button="right")
    page.click(".litecontextmenu .litemenu-entry:has-text('Sweep this value')")
    page.wait_for_selector("#sweep-dialog")


def _sweep_colours(page: Any, tmp_path: Path, colours: list[str]) -> None:
    open_workflow(page, tiny_workflow(), tmp_path)
    _right_click_widget(page, "solid", "color")
    for c in colours:
        page.locator(f"#sweep-dialog .sweep-ticks input[data-value='\"{c}\"']").check()
    page.click("#sweep-dialog .sweep-ok")
    settle(page)


def _wait_finished(page: Any, server: Any, count: int) -> str:
    """Open the newest sweep from the Sweeps tab and wait until its `count` cells show images."""
    page.click("#side .tabs button[data-tab='sweeps']")
    page.click("#sweep-list li[data-sweep] button:has-text('Open')")
    page.wait_for_function("(n) => document.querySelectorAll('.sweep-grid figure[data-run] img').length === n",
                           arg=count, timeout=60000)
    return page.get_attribute("#sweep-list li[data-sweep]", "data-sweep")


def test_sweep_a_widget_open_the_grid_and_rate_with_the_keyboard(canvas: Any, loom_server: Any,
                                                                 tmp_path: Path) -> None:
    page = canvas
    _sweep_colours(page, tmp_path, ["green", "blue"])  # red is ticked: the widget's value
    wf = exported(page)
    assert wf["sweeps"] == [{"node": "solid", "input": "color", "values": ["red", "green", "blue"]}]
    assert wf["sweep_mode"] == "product"
    assert page.text_content("#btn-queue").strip() == "Queue 3 ▶"
    r, g, b = page.evaluate(BADGE_PIXEL_JS, ["solid", "color"])
    assert r > 150 and 90 < g < 160 and b < 90, (r, g, b)  # the orange "⟳ 3" badge beside the widget

    # the sweep survives a reload of the page (it is part of the stored workflow) and undo
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert exported(page)["sweeps"][0]["values"] == ["red", "green", "blue"]

    page.click("#btn-queue")
    sweep_id = _wait_finished(page, loom_server, 3)
    data = loom_server.get_json(f"/api/sweeps/{sweep_id}")
    assert data["count"] == 3 and data["counts"] == {"finished": 3}
    assert page.locator(".sweep-grid .grid-page thead th").all_text_contents()[1:] == ["red", "green", "blue"]
    assert page.locator(".sweep-table tbody tr").count() == 3
    href = page.get_attribute(".sweep-studio a.sweep-save", "href")
    assert loom_server.get_bytes(href).startswith(b"\x89PNG")
    assert "solid.color" in loom_server.get_bytes(page.get_attribute(".sweep-studio a.sweep-csv", "href")).decode()

    page.click(".sweep-studio .rate-toggle")
    page.fill("#rater-dialog input", "tester")
    page.keyboard.press("Enter")
    page.wait_for_selector(".sweep-studio.rating-mode figure.rate-selected")
    page.keyboard.press("4")
    page.wait_for_selector(".sweep-grid figure .rating-badge[data-score='4']")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("2")
    page.wait_for_selector(".sweep-grid figure .rating-badge[data-score='2']")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Tab")  # realism → prompt alignment
    assert page.input_value(".sweep-studio .rate-criterion") == "alignment"
    page.keyboard.press("5")
    page.wait_for_selector(".sweep-grid figure .rating-badge[data-score='5']")

    ratings = loom_server.get_json("/api/ratings?rater=tester")["ratings"]
    got = [(r["cell"], r["criterion"], r["score"], r["sweep"]) for r in ratings]
    assert got == [(0, "realism", 4, sweep_id), (1, "realism", 2, sweep_id), (2, "alignment", 5, sweep_id)]
    # back on realism, the thumbnails show the realism scores read back from the server
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    _wait_finished(page, loom_server, 3)
    page.click(".sweep-studio .rate-toggle")  # the rater's name is remembered: no dialog
    page.wait_for_selector(".sweep-studio.rating-mode")
    assert page.locator("#rater-dialog").count() == 0
    page.select_option(".sweep-studio .rate-criterion", "realism")
    page.wait_for_function("() => document.querySelectorAll('.sweep-grid .rating-badge').length === 2")
    assert page.locator(".sweep-grid .rating-badge").all_text_contents() == ["★4", "★2"]
    table = loom_server.get_json(f"/api/sweeps/{sweep_id}/table")["rows"]
    assert [row.get("human.realism") for row in table] == [4.0, 2.0, None]


def test_a_bad_value_in_a_swept_range_shows_in_problems_with_its_cell(canvas: Any, console: Any,
                                                                      tmp_path: Path) -> None:
    page = canvas
    console.allow("422")
    open_workflow(page, tiny_workflow(), tmp_path)
    _right_click_widget(page, "solid", "width")
    page.select_option("#sweep-dialog .sweep-kind", "range")
    page.fill("#sweep-dialog .sweep-start", "8")
    page.fill("#sweep-dialog .sweep-stop", "2040")
    page.fill("#sweep-dialog .sweep-step", "1016")
    assert "3 value(s)" in page.text_content("#sweep-dialog .sweep-info")
    page.keyboard.press("Enter")
    assert exported(page)["sweeps"] == [{"node": "solid", "input": "width",
                                         "values": {"start": 8, "stop": 2040, "step": 1016}}]
    page.click("#btn-queue")
    page.wait_for_selector("#tab-problems.active #problem-list li")
    text = page.text_content("#problem-list")
    assert "cell 2" in text and "solid.width=2040" in text, text
    # Remove sweep: the queue button goes back to one run
    x, y = widget_xy(page, "solid", "width", 0.3)
    page.mouse.click(x, y, button="right")
    page.click(".litecontextmenu .litemenu-entry:has-text('Remove sweep')")
    assert "sweeps" not in exported(page)
    page.wait_for_function("() => document.querySelector('#btn-queue').textContent.trim() === 'Queue ▶'")


def test_ab_choices_are_blind_and_stored(canvas: Any, loom_server: Any, tmp_path: Path) -> None:
    page = canvas
    _sweep_colours(page, tmp_path, ["blue"])
    page.click("#btn-queue")
    _wait_finished(page, loom_server, 2)
    page.click(".sweep-studio .close")
    page.click("#side .tabs button[data-tab='gallery']")
    page.wait_for_function("() => document.querySelectorAll('#gallery figure[data-run]').length >= 2")
    page.click(".gallery-tools .rate-ab")
    page.fill("#rater-dialog input", "abtester")
    page.keyboard.press("Enter")
    page.wait_for_selector("#ab-overlay .ab-left img[src]")
    overlay_text = page.text_content("#ab-overlay")
    for secret in ("red", "blue", "cell", "web_test"):
        assert secret not in overlay_text  # blind: no values, names or labels
    lefts = []
    for key, n in (("ArrowLeft", 1), ("b", 2)):
        lefts.append(page.get_attribute("#ab-overlay .ab-left img", "src"))
        page.keyboard.press(key)
        page.wait_for_function("(n) => document.querySelector('#ab-overlay .ab-count').textContent.startsWith(`${n} choice`)",
                               arg=n)
    choices = loom_server.get_json("/api/ratings?rater=abtester")["choices"]
    assert [c["winner"] for c in choices] == ["a", "b"]
    for c, left in zip(choices, lefts):
        assert c["a"]["run"] != c["b"]["run"]
        detail = loom_server.get_json(f"/api/runs/{c['a']['run']}")
        path = detail["result"]["ui"][c["a"]["node"]]["images"][c["a"]["image_index"]]["path"]
        assert urllib.parse.quote(path) in left  # "a" is the image that was shown on the left
    page.keyboard.press("Escape")
    assert page.locator("#ab-overlay").count() == 0
