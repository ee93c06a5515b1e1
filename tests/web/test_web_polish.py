"""Canvas polish: a steady top bar, readable default zoom, legible group titles, hints that do
not overlap, the Problems tab letting go, long paths shortened in the middle."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from web_helpers import open_workflow, queue_and_wait, settle, tiny_workflow, widget_xy

BUTTON_XS_JS = """() => [...document.querySelectorAll('#topbar button, #topbar select, #topbar input')]
  .filter((e) => e.offsetParent !== null)
  .map((e) => [e.id || e.textContent, Math.round(e.getBoundingClientRect().left)])"""


def _luminance(hex_rgb: str) -> float:
    def chan(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (chan(v / 255) for v in _rgb(hex_rgb))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _rgb(hex_rgb: str) -> tuple[int, int, int]:
    h = hex_rgb.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _blend(fg: str, bg: str, alpha: float) -> str:
    f, b = _rgb(fg), _rgb(bg)
    return "#" + "".join(f"{round(alpha * x + (1 - alpha) * y):02x}" for x, y in zip(f, b))


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_top_bar_buttons_stay_put_when_the_title_changes(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["meta"]["title"] = "A"
    open_workflow(canvas, wf, tmp_path, "short.json")
    before = canvas.evaluate(BUTTON_XS_JS)
    wf["meta"]["title"] = "A very long workflow title " * 8
    open_workflow(canvas, wf, tmp_path, "long.json")
    after = canvas.evaluate(BUTTON_XS_JS)
    assert before == after
    # the long title is cut with an ellipsis, not wrapped or spilled
    style = canvas.evaluate("(() => { const s = getComputedStyle(document.querySelector('#wf-title'));"
                            " return [s.textOverflow, s.overflow]; })()")
    assert style == ["ellipsis", "hidden"]


def test_the_default_workflow_opens_at_a_readable_zoom(canvas: Any, loom_server: Any) -> None:
    canvas.goto(loom_server.url + "/?fresh")
    canvas.wait_for_selector("body[data-ready='1']")
    settle(canvas)
    sizes = canvas.evaluate("""() => {
      const c = window.loom.canvas;
      const px = (f) => parseFloat(/([\\d.]+)px/.exec(f)[1]);
      return [px(c.title_text_font), px(c.inner_text_font), c.ds.scale, window.loom.graph.nodes.length];
    }""")
    title_px, widget_px, scale, count = sizes
    assert count > 0
    assert min(title_px, widget_px) * scale >= 11, sizes


def test_group_titles_have_enough_contrast(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    drawn = canvas.evaluate("""() => {
      const group = window.loom.graph.groups[0];
      const seen = [];
      let fill = null;
      const ctx = new Proxy(document.createElement('canvas').getContext('2d'), {
        get(t, k) { const v = t[k]; if (k === 'fillText') return (...a) => { seen.push([String(fill), a[0]]); };
                    return typeof v === 'function' ? v.bind(t) : v; },
        set(t, k, v) { if (k === 'fillStyle') fill = v; t[k] = v; return true; },
      });
      group.draw(window.loom.canvas, ctx);
      return { seen, color: group.color || '#335', bg: window.loom.canvas.clear_background_color };
    }""")
    title_fills = [f for f, text in drawn["seen"] if text.startswith("Make")]
    assert title_fills, drawn
    behind = _blend(drawn["color"], drawn["bg"], 0.25)  # litegraph fills a group at 25 % alpha
    for fill in title_fills:
        assert _contrast(fill, behind) >= 4.5, (fill, behind)


def test_empty_canvas_hint_and_drop_hint_do_not_overlap(canvas: Any) -> None:
    canvas.click("#btn-new")
    canvas.wait_for_selector("#empty-hint", state="visible")
    canvas.evaluate("""() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['{}'], 'x.json', { type: 'application/json' }));
      document.querySelector('#graph-canvas').dispatchEvent(
        new DragEvent('dragenter', { bubbles: true, cancelable: true, dataTransfer: dt }));
    }""")
    canvas.wait_for_selector("#drop-hint", state="visible")
    boxes = canvas.evaluate("""() => ['#empty-hint', '#drop-hint'].map((s) => {
      const e = document.querySelector(s);
      if (!e.checkVisibility()) return null;
      const r = e.getBoundingClientRect();
      return [r.left, r.top, r.right, r.bottom];
    })""")
    empty, drop = boxes
    assert drop is not None
    if empty is not None:
        assert empty[2] <= drop[0] or drop[2] <= empty[0] or empty[3] <= drop[1] or drop[3] <= empty[1], boxes


def test_problems_tab_lets_go_once_it_is_empty(canvas: Any, console: Any, tmp_path: Path) -> None:
    console.allow("status of 400")
    open_workflow(canvas, tiny_workflow(solid__width=4), tmp_path)
    canvas.click("#btn-queue")
    canvas.wait_for_selector("#problem-list li")
    assert canvas.evaluate("document.querySelector('.tabs button.active').dataset.tab") == "problems"
    canvas.mouse.click(*widget_xy(canvas, "solid", "width", 0.5))
    canvas.fill(".graphdialog input", "32")
    canvas.keyboard.press("Enter")
    canvas.wait_for_function("!window.loom.nodeById('solid').has_errors")
    assert canvas.locator("#problem-list li").count() == 0
    active = canvas.evaluate("document.querySelector('.tabs button.active').dataset.tab")
    assert active != "problems"
    assert canvas.locator("#tab-problems").is_hidden()


def test_long_paths_are_cut_in_the_middle_with_the_full_path_as_tooltip(canvas: Any, tmp_path: Path) -> None:
    prefix = "a_rather_long_output_prefix_that_will_not_fit_in_the_gallery_" * 2
    open_workflow(canvas, tiny_workflow(save__prefix=prefix), tmp_path)
    _, status = queue_and_wait(canvas)
    assert status == "finished"
    canvas.wait_for_selector("#gallery figure figcaption", state="attached")
    text, title = canvas.evaluate("(() => { const c = document.querySelector('#gallery figure figcaption');"
                                  " return [c.textContent, c.title]; })()")
    assert prefix in title and title.endswith(".png")
    assert "…" in text and text.endswith(".png") and len(text) < len(title)
