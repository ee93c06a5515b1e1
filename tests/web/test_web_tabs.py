"""Workflow tabs: separate undo histories, views, titles and unsaved marks; opening files;
closing; surviving a reload; runs queued from a tab that is hidden when they finish."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from web_helpers import exported, open_workflow, settle, tiny_workflow

TAB_TITLES_JS = "[...document.querySelectorAll('#wf-tabs .wf-tab .name')].map((e) => e.textContent)"
ACTIVE_JS = "[...document.querySelectorAll('#wf-tabs .wf-tab')].findIndex((e) => e.classList.contains('active'))"


def tab(page: Any, index: int) -> Any:
    return page.locator("#wf-tabs .wf-tab").nth(index)


def add_node(page: Any, type_: str, pos: list[float]) -> str:
    """Adds a node as the palette does (one undo step); returns its id."""
    return page.evaluate("([t, p]) => String(window.loom.addNode(t, p).id)", [type_, pos])


def test_each_tab_keeps_its_own_undo_history_view_and_title(canvas: Any, tmp_path: Path) -> None:
    assert canvas.evaluate("document.querySelectorAll('#wf-tabs .wf-tab').length") == 1
    open_workflow(canvas, tiny_workflow(), tmp_path)  # the default workflow is not empty: a new tab
    assert canvas.evaluate(TAB_TITLES_JS)[1] == "Web test: solid, invert, save"
    assert canvas.evaluate(ACTIVE_JS) == 1
    in_a = add_node(canvas, "t_mask", [100, 400])
    canvas.wait_for_function("!document.querySelector('#btn-undo').disabled")
    assert "dirty" in tab(canvas, 1).get_attribute("class")
    canvas.evaluate("window.loom.canvas.ds.offset = [-123, -45]")

    canvas.click("#btn-new-tab")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    assert canvas.evaluate(ACTIVE_JS) == 2
    assert canvas.is_disabled("#btn-undo")  # a new tab has nothing to undo
    in_b = add_node(canvas, "t_solid", [50, 50])
    canvas.wait_for_function("!document.querySelector('#btn-undo').disabled")

    tab(canvas, 1).click()  # back to the tiny workflow: its node, its view, its undo step
    canvas.wait_for_function("(id) => !!window.loom.nodeById(id)", arg=in_a)
    assert canvas.evaluate("[...window.loom.canvas.ds.offset]") == [-123, -45]
    assert set(exported(canvas)["nodes"]) == {"solid", "invert", "save", in_a}
    canvas.locator("#graph-canvas").focus()
    canvas.keyboard.press("Control+z")  # undoes the t_mask added here, not the node of tab 3
    canvas.wait_for_function("(id) => !window.loom.nodeById(id)", arg=in_a)
    assert set(exported(canvas)["nodes"]) == {"solid", "invert", "save"}
    canvas.wait_for_function("!document.querySelectorAll('#wf-tabs .wf-tab')[1].classList.contains('dirty')")

    tab(canvas, 2).click()
    canvas.wait_for_function("(id) => !!window.loom.nodeById(id)", arg=in_b)
    assert [n["type"] for n in exported(canvas)["nodes"].values()] == ["t_solid"]
    assert not canvas.is_disabled("#btn-undo")
    canvas.click("#btn-undo")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")


def test_opening_replaces_an_empty_unmodified_tab_and_tabs_survive_a_reload(canvas: Any,
                                                                            tmp_path: Path) -> None:
    canvas.click("#btn-new-tab")
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    open_workflow(canvas, tiny_workflow(), tmp_path)  # into the empty tab, no third tab
    assert canvas.evaluate(TAB_TITLES_JS)[1:] == ["Web test: solid, invert, save"]
    added = add_node(canvas, "t_mask", [100, 400])
    wf2 = tiny_workflow()
    wf2["meta"]["title"] = "Second"
    open_workflow(canvas, wf2, tmp_path, "second.json")  # the tab holds work: a new tab
    assert canvas.evaluate(TAB_TITLES_JS)[1:] == ["Web test: solid, invert, save", "Second"]
    canvas.wait_for_timeout(500)  # the debounced save of the tabs
    canvas.reload()
    canvas.wait_for_selector("body[data-ready='1']")
    assert canvas.evaluate(TAB_TITLES_JS)[1:] == ["Web test: solid, invert, save", "Second"]
    assert canvas.evaluate(ACTIVE_JS) == 2
    assert "dirty" in tab(canvas, 1).get_attribute("class")  # the unsaved mark came back
    assert "dirty" not in tab(canvas, 2).get_attribute("class")
    tab(canvas, 1).click()
    canvas.wait_for_function("(id) => !!window.loom.nodeById(id)", arg=added)
    assert canvas.is_visible("#dirty-dot")


def test_closing_a_tab_asks_when_it_has_unsaved_changes(canvas: Any, tmp_path: Path) -> None:
    open_workflow(canvas, tiny_workflow(), tmp_path)
    add_node(canvas, "t_mask", [100, 400])
    canvas.wait_for_function("document.querySelectorAll('#wf-tabs .wf-tab')[1].classList.contains('dirty')")
    asked: list[str] = []

    def answer(dialog: Any, accept: bool) -> None:
        asked.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    canvas.once("dialog", lambda d: answer(d, False))
    tab(canvas, 1).locator(".close").click()
    assert asked and "unsaved changes" in asked[0]
    assert canvas.evaluate("document.querySelectorAll('#wf-tabs .wf-tab').length") == 2
    canvas.once("dialog", lambda d: answer(d, True))
    tab(canvas, 1).locator(".close").click()
    assert len(asked) == 2
    assert canvas.evaluate("document.querySelectorAll('#wf-tabs .wf-tab').length") == 1
    # the default workflow is back on the canvas; closing it (clean: no question) leaves an empty tab
    canvas.wait_for_function("window.loom.graph.nodes.length > 0")
    tab(canvas, 0).locator(".close").click()
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    assert len(asked) == 2
    assert canvas.evaluate("document.querySelectorAll('#wf-tabs .wf-tab').length") == 1
    canvas.keyboard.press("Alt+t")
    assert canvas.evaluate("document.querySelectorAll('#wf-tabs .wf-tab').length") == 2


def test_a_run_finishing_while_its_tab_is_hidden_lands_on_that_tab(canvas: Any, tmp_path: Path) -> None:
    wf = tiny_workflow()
    wf["nodes"]["solid"]["inputs"]["color"] = "blue"
    wf["nodes"]["invert"] = {"type": "t_slow", "inputs": {  # ~1.5 s: it ends while hidden
        "image": {"node": "solid", "output": "image"}, "steps": 10, "delay": 0.15},
        "ui": {"pos": [360, 120], "size": [220, 150]}}
    open_workflow(canvas, wf, tmp_path)
    canvas.evaluate("window.loom.queue()")
    canvas.wait_for_function("window.loom.tabs.runTab.size === 1")
    canvas.click("#btn-new-tab")  # switch away while it runs
    canvas.wait_for_function("window.loom.graph.nodes.length === 0")
    assert canvas.evaluate("window.loom.tabs.tabs[1].pending.size") == 0  # still running
    canvas.wait_for_function("window.loom.tabs.tabs[1].pending.has('save')", timeout=30000)
    captions = canvas.evaluate("[...document.querySelectorAll('#gallery figure figcaption')]"
                               ".map((c) => c.title || c.textContent)")
    assert any(c.startswith("Web test: solid, invert, save › save") for c in captions), captions
    settle(canvas)
    assert canvas.evaluate("window.loom.graph.nodes.length") == 0  # nothing was painted here
    tab(canvas, 1).click()
    canvas.wait_for_function("window.loom.nodeById('save')?.loom.images?.length === 1")
    assert canvas.evaluate("window.loom.nodeById('save').loom.status") in ("done", "cached")
