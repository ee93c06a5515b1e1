"""The @node decorator: schemas for every widget kind and declaration mistakes."""
from __future__ import annotations

import json
from typing import Literal, NamedTuple, Optional

import pytest

from loom import DeclarationError, Input, Registry, RegistryError, node
from loom.types import Image, ImageFile, ModelFile, Seed, SEED_MAX


def schema_of(registry: Registry, node_id: str) -> dict:
    return registry.schema(registry[node_id])


def test_schema_of_every_widget_kind(registry):
    s = schema_of(registry, "t_combo")
    json.dumps(s)  # serializes
    by = {i["name"]: i for i in s["inputs"]}
    assert by["mode"] == {"name": "mode", "type": "combo", "kind": "widget", "required": False,
                          "default": "x", "choices": ["x", "y"], "accepts": ["str"]}
    assert by["colour"]["choices"] == ["red", "blue"] and by["colour"]["default"] == "red"
    assert by["seed"]["type"] == "seed" and by["seed"]["randomize"] is True
    assert by["seed"]["min"] == 0 and by["seed"]["max"] == SEED_MAX
    assert by["flag"] == {"name": "flag", "type": "bool", "kind": "widget", "required": False,
                          "default": False, "accepts": []}  # no node of this registry outputs a bool
    assert by["text"]["multiline"] is True and by["text"]["type"] == "str"
    assert s["outputs"] == [{"name": "str", "type": "str"}]
    assert s["description"] == "Every widget kind."


def test_schema_numbers_sockets_optional_and_outputs(registry):
    s = schema_of(registry, "t_scale")
    factor = s["inputs"][1]
    assert (factor["min"], factor["max"], factor["step"], factor["default"]) == (-10.0, 10.0, 0.5, 1.0)
    sink = schema_of(registry, "t_sink")
    assert sink["output_node"] is True and sink["outputs"] == []
    extra = sink["inputs"][2]
    assert extra["name"] == "extra" and extra["required"] is False
    dm = schema_of(registry, "t_divmod")
    assert [o["name"] for o in dm["outputs"]] == ["quotient", "remainder"]
    img = schema_of(registry, "t_image_sink")["inputs"][0]
    assert img == {"name": "image", "type": "Image", "kind": "socket", "required": True,
                   "accepts": ["Image"]}


def test_model_and_image_file_widgets(tmp_path):
    @node(category="t")
    def mf_node(ckpt: ModelFile["checkpoints"], picture: ImageFile) -> Image:  # noqa: F821
        """Model file widget."""
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "a.safetensors").write_bytes(b"x")
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "cat.png").write_bytes(b"x")
    from loom import Settings
    reg = Registry()
    reg.add(mf_node)
    s = reg.schema(reg["mf_node"], Settings(home=tmp_path))
    ck, pic = s["inputs"]
    assert ck["type"] == "model_file" and ck["model_kind"] == "checkpoints"
    assert "a.safetensors" in ck["choices"]
    assert pic["type"] == "image_file" and pic["upload"] is True and pic["choices"] == ["cat.png"]


@pytest.mark.parametrize("make, message", [
    (lambda: _untyped(), "missing type annotation"),
    (lambda: _no_return(), "missing return annotation"),
    (lambda: _out_of_range(), "default 50 is above the maximum 10"),
    (lambda: _bad_choice(), "is not one of the choices"),
    (lambda: _min_above_max(), "minimum 5 is above maximum 1"),
    (lambda: _socket_default(), "cannot have a default"),
    (lambda: _bare_model_file(), "ModelFile[\"kind\"]"),
    (lambda: _bad_migration(), "migration from version 3"),
])
def test_declaration_mistakes_fail_with_their_message(make, message):
    with pytest.raises(DeclarationError) as err:
        make()
    assert message in str(err.value)


def _untyped():
    @node
    def untyped(ctx, a) -> int:  # type: ignore[no-untyped-def]
        """x"""


def _no_return():
    @node
    def no_ret(a: int):
        """x"""


def _out_of_range():
    @node
    def out_of_range(a: int = Input(50, ge=0, le=10)) -> int:
        """x"""


def _bad_choice():
    @node
    def bad_choice(a: Literal["p", "q"] = "z") -> int:  # type: ignore[assignment]
        """x"""


def _min_above_max():
    @node
    def min_above_max(a: float = Input(0.0, ge=5, le=1)) -> int:
        """x"""


def _socket_default():
    @node
    def socket_default(a: Image = 3) -> int:  # type: ignore[assignment]
        """x"""


def _bare_model_file():
    @node
    def bare_model(a: ModelFile) -> int:
        """x"""


def _bad_migration():
    @node(version=2, migrations={3: lambda d: d})
    def bad_migration(a: int) -> int:
        """x"""


def test_declaration_errors_name_node_and_parameter():
    with pytest.raises(DeclarationError, match=r"node 'named_node', parameter 'mystery'"):
        @node
        def named_node(mystery) -> int:  # type: ignore[no-untyped-def]
            """x"""


def test_duplicate_id_is_an_error_unless_override():
    @node(id="dup_id")
    def first(a: int) -> int:
        """x"""

    @node(id="dup_id")
    def second(a: int) -> int:
        """x"""

    @node(id="dup_id", override=True)
    def third(a: int) -> int:
        """x"""

    reg = Registry()
    reg.add(first)
    with pytest.raises(RegistryError, match="'dup_id'.*already registered"):
        reg.add(second)
    reg.add(third)
    assert reg["dup_id"].fn is third


class Two(NamedTuple):
    left: int
    right: Image


def test_optional_socket_and_named_tuple_result():
    @node
    def two(a: Optional[Image] = None) -> Two:
        """x"""
        return Two(1, a)

    spec = two.__loom_node__
    assert spec.inputs[0].required is False and spec.inputs[0].kind == "socket"
    assert spec.normalize_result(Two(1, None)) == {"left": 1, "right": None}
    assert spec.normalize_result((2, None)) == {"left": 2, "right": None}
    with pytest.raises(TypeError, match="must return 2 values"):
        spec.normalize_result(5)


def test_seed_is_a_seed_widget():
    @node
    def seeded(seed: Seed = 3) -> int:
        """x"""
        return seed

    i = seeded.__loom_node__.inputs[0]
    assert i.widget == "seed" and i.ge == 0 and i.le == SEED_MAX


def test_single_output_is_named_after_its_type_in_snake_case():
    from loom.nodeapi import _snake
    assert [_snake(n) for n in ("VAE", "FeatureExtractor", "Image", "HTTPServer")] == \
        ["vae", "feature_extractor", "image", "http_server"]
