"""Node and group colours of a ComfyUI workflow come through to the Loom workflow's ``ui``."""
from __future__ import annotations

import json

from comfyui_helpers import fixture

from loom import Workflow
from loom_nodes.comfyui import convert
from loom_nodes.comfyui.formats import css_colour


def _sd15() -> dict:
    return json.loads(fixture("ui_sd15_txt2img.json"))


def test_colours_and_pin_come_through_into_ui() -> None:
    data = _sd15()
    by_id = {n["id"]: n for n in data["nodes"]}
    by_id[3].update(color="#2a363b", bgcolor="#3f5159ff")          # pale blue (with alpha)
    by_id[9].update(color="rgb(50, 34, 34)", flags={"pinned": True})
    wf, report = convert(data)
    Workflow.from_dict(wf)
    n = wf["nodes"]
    assert (n["6"]["ui"]["color"], n["6"]["ui"]["bgcolor"]) == ("#232", "#353")   # ComfyUI's green
    assert (n["7"]["ui"]["color"], n["7"]["ui"]["bgcolor"]) == ("#322", "#533")   # and red
    assert (n["3"]["ui"]["color"], n["3"]["ui"]["bgcolor"]) == ("#2a363b", "#3f5159ff")
    assert n["9"]["ui"]["color"] == "rgb(50, 34, 34)" and n["9"]["ui"]["pinned"] is True
    assert "bgcolor" not in n["9"]["ui"] and "color" not in n["4"]["ui"]
    assert "color" not in n["3_scheduler"].get("ui", {})   # a helper node keeps its default colour
    assert wf["groups"][0]["color"] == "#3f789e"
    assert not [e for e in report["entries"] if "not a colour" in e["message"]]


def test_a_value_that_is_not_a_colour_is_left_out_with_a_note() -> None:
    data = _sd15()
    by_id = {n["id"]: n for n in data["nodes"]}
    by_id[6]["color"] = "url(javascript:alert(1))"
    by_id[6]["bgcolor"] = 12
    data["groups"][0]["color"] = "#12345"
    wf, report = convert(data)
    ui = wf["nodes"]["6"]["ui"]
    assert "color" not in ui and "bgcolor" not in ui and ui["title"] == "Positive"
    assert "color" not in wf["groups"][0]
    notes = [e for e in report["entries"] if e["kind"] == "note" and "not a colour" in e["message"]]
    assert [(e["node"], e["message"].split()[0]) for e in notes] == [("6", "color"), ("6", "bgcolor")]
    assert report["complete"] is True   # a colour is layout: the workflow itself is complete


def test_css_colour_accepts_what_litegraph_writes_only() -> None:
    for ok in ("#232", "#abcd", "#3f789e", "#3f789eff", "rgb(1, 2, 3)", "rgba(1,2,3,0.5)",
               "hsl(120deg 50% 50%)", "rgb(1 2 3 / 50%)"):
        assert css_colour(ok) == ok
    for bad in ("red;", "#12", "#12345", "rgb(1,2)", "url(x)", "", None, 3, "#" + "a" * 70):
        assert css_colour(bad) is None
