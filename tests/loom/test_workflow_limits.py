"""The one JSON parse and its limits (nesting depth, number length), bad workflow files of every
kind giving one WorkflowFileError line in Python and on the command line, and file names."""
from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib

import pytest
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from loom import (Settings, UserInputError, Workflow, WorkflowFileError, resolve_inside,
                  resolve_model)
from loom.validation import resolve_input_image
from loom.workflow import MAX_JSON_DEPTH, json_depth, parse_json
from test_cli import loom


def nested(depth: int, leaf: str = "1") -> str:
    """A workflow whose one input value is ``depth`` arrays deep (the envelope adds 4 levels)."""
    return ('{"nodes": {"a": {"type": "t", "inputs": {"x": '
            + "[" * depth + leaf + "]" * depth + "}}}}")


def png_with_workflow(text: str) -> bytes:
    info = PngInfo()
    info.add_itxt("loom.workflow", text)
    buf = io.BytesIO()
    PILImage.new("RGB", (2, 2)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


# --- json_depth / parse_json ---------------------------------------------------------------
@pytest.mark.parametrize("text, depth", [
    ("1", 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4), ("[[], [[]], []]", 3),
    ('["[[[[", "]]", "{"]', 1), (r'["\"[[", "\\", "\\\"{{"]', 1), (r'{"a\\": [["\\\\"]]}', 3),
    ("[" * 100_000 + "]" * 100_000, 100_000),
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert json_depth(text.encode()) == depth
    if depth < 100:
        json.loads(text)  # every case is valid JSON


def test_the_depth_limit_is_exact_and_names_the_file():
    limit_ok = nested(MAX_JSON_DEPTH - 4)
    assert parse_json(limit_ok, "ok.json")["nodes"]["a"]["type"] == "t"
    with pytest.raises(WorkflowFileError, match=rf"^deep\.json: JSON nested {MAX_JSON_DEPTH + 1} "
                                                rf"levels deep; the limit is {MAX_JSON_DEPTH}$"):
        parse_json(nested(MAX_JSON_DEPTH - 3), "deep.json")


@pytest.mark.parametrize("text, words", [
    (nested(900), "nested 904 levels deep"),
    (nested(100_000), "nested 100004 levels deep"),
    ('{"x": ' * 900 + "1" + "}" * 900, "nested 900 levels deep"),
    (nested(1, "9" * 5000), f"more than {sys.get_int_max_str_digits()} digits"),
    ('{"a": [1, 2', "not valid JSON (line 1"),
])
def test_hostile_json_is_one_workflow_error(text, words):
    with pytest.raises(WorkflowFileError) as err:
        parse_json(text.encode(), "body")
    assert str(err.value).startswith("body: ") and words in str(err.value), err.value
    with pytest.raises(WorkflowFileError, match="x.json: "):
        Workflow.from_bytes(text.encode(), "x.json")


def test_parse_json_refuses_bytes_that_are_not_utf8():
    with pytest.raises(WorkflowFileError, match="not UTF-8 text"):
        parse_json(b'{"a": "\xff"}', "body")


def test_a_dict_too_deep_to_copy_is_a_workflow_error():
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(WorkflowFileError, match="nested too deeply"):
        Workflow.load({"nodes": {"a": {"type": "t", "inputs": {"x": value}}}})


# --- files: Python and the command line ------------------------------------------------------
def hostile_files(tmp_path):
    files = {
        "deep.json": nested(100_000).encode(),
        "deep900.json": nested(900).encode(),
        "longint.json": nested(1, "7" * 5000).encode(),
        "deep.png": png_with_workflow(nested(900)),
        "deep100k.png": png_with_workflow(nested(100_000)),
        "longint.png": png_with_workflow(nested(1, "7" * 5000)),
        "bomb.png": png_header_only(30_000, 30_000),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


def test_every_bad_file_is_a_workflow_error(tmp_path):
    for path in hostile_files(tmp_path):
        with pytest.raises(WorkflowFileError) as err:
            Workflow.load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value), err.value


@pytest.mark.parametrize("command", ["run", "validate"])
def test_the_cli_prints_one_line_for_every_bad_file(tmp_path, command):
    for path in hostile_files(tmp_path):
        if path.name not in ("deep.json", "longint.json", "deep.png", "bomb.png"):
            continue  # the same errors as these: one subprocess each is slow enough
        r = loom(command, path, cwd=tmp_path)
        assert r.returncode == 1, (path.name, r.stderr)
        assert "Traceback" not in r.stderr, (path.name, r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith(f"error: {path}"), (path.name, r.stderr)


# --- names of files under a folder -------------------------------------------------------------
BAD_NAMES = [".", "./", "./.", "", "a\x00b.safetensors", "/etc/passwd", "../x.safetensors",
             "sub/../../x.safetensors"]


@pytest.mark.parametrize("name", BAD_NAMES + ["embedded/."])
def test_model_names_resolve_inside_their_folder_or_say_why_not(tmp_path, name):
    settings = Settings(home=tmp_path)
    with pytest.raises(UserInputError) as err:
        resolve_model(settings, "checkpoints", name)
    assert repr(name) in str(err.value), err.value


def test_model_names_that_are_fine_resolve(tmp_path):
    settings = Settings(home=tmp_path)
    folder = settings.model_roots[0] / "checkpoints" / "sub"
    folder.mkdir(parents=True)
    (folder / "m.safetensors").write_bytes(b"x")
    elsewhere = tmp_path / "big_disk.safetensors"
    elsewhere.write_bytes(b"y")
    os.symlink(elsewhere, folder / "linked.safetensors")  # the model folders are the user's
    assert resolve_model(settings, "checkpoints", "./sub/m.safetensors") == folder / "m.safetensors"
    assert resolve_model(settings, "checkpoints", "sub/linked.safetensors") == elsewhere


@pytest.mark.parametrize("name", BAD_NAMES + ["link.png", "linkdir/x.png"])
def test_input_images_stay_strictly_inside_the_input_folder(tmp_path, name):
    settings = Settings(home=tmp_path)
    settings.inputs.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(b"x")
    os.symlink(outside / "x.png", settings.inputs / "link.png")
    os.symlink(outside, settings.inputs / "linkdir")
    with pytest.raises(UserInputError) as err:
        resolve_input_image(settings, name)
    assert repr(name) in str(err.value), err.value


def test_resolve_inside_gives_the_reason(tmp_path):
    assert resolve_inside(tmp_path, "a/./b") == tmp_path.resolve() / "a" / "b"
    for name, reason in [(".", "names the folder itself"), ("a/..", "without '..'"),
                         ("x\x00", "NUL byte"), ("", "is empty"), ("/x", "relative path")]:
        with pytest.raises(ValueError, match=reason):
            resolve_inside(tmp_path, name)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_a_browser_cannot_read_back_are_refused(literal):
    with pytest.raises(WorkflowFileError, match="not a finite number"):
        parse_json('{"nodes": {"a": {"type": "t", "inputs": {"x": ' + literal + '}}}}', "wf.json")
    assert parse_json('{"x": 1e300}')["x"] == 1e300


@pytest.mark.parametrize("value,words", [
    ("[" * 100 + "]" * 100, "nested 100 levels"),
    ("9" * 5000, "digits"),
    ("NaN", "not a finite number"),
])
def test_set_values_obey_the_same_limits_as_files(tmp_path, value, words):
    from loom.settings import SHIPPED_WORKFLOWS
    r = loom("run", SHIPPED_WORKFLOWS / "image_basics.json", "--set", f"save.prefix={value}",
             cwd=tmp_path)
    assert r.returncode == 1 and words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_set_text_that_is_not_json_stays_text():
    from loom.cli import parse_set
    assert parse_set(["save.prefix=cats/run", "s.cfg=7.5", "s.on=true"]) == [
        ("save", "prefix", "cats/run"), ("s", "cfg", 7.5), ("s", "on", True)]
