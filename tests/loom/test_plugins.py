"""Plugin discovery: custom_nodes folders (good and broken) and entry points."""
from __future__ import annotations

import sys
import textwrap

from loom import Executor, Registry, Settings

GOOD_PACKAGE = '''
from loom import node
from .helpers import double

@node(category="plugin")
def plug_double(x: int = 2) -> int:
    """Double a number."""
    return double(x)

@node(category="plugin", output=True)
def plug_out(x: int) -> int:
    """Output."""
    return x
'''


def write_plugins(root):
    root.mkdir(parents=True, exist_ok=True)
    pkg = root / "good_pack"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(GOOD_PACKAGE)
    (pkg / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (root / "single_file.py").write_text(textwrap.dedent('''
        from loom import node
        @node
        def plug_triple(x: int = 1) -> int:
            """Triple."""
            return 3 * x
    '''))
    (root / "broken.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    (root / "dup.py").write_text(textwrap.dedent('''
        from loom import node
        @node(id="save_image")
        def clash(x: int) -> int:
            """Clashes with a built-in."""
            return x
    '''))
    (root / "notes.txt").write_text("not a plugin")


def test_custom_nodes_good_broken_and_duplicate(tmp_path):
    write_plugins(tmp_path / "custom_nodes")
    settings = Settings(home=tmp_path)
    reg = Registry.default(settings)
    assert {"plug_double", "plug_out", "plug_triple", "sample_image"} <= {s.id for s in reg}
    errors = {e.plugin.rsplit("/", 1)[-1]: e.error for e in reg.plugin_errors}
    assert "broken on purpose" in errors["broken.py"]
    assert "already registered" in errors["dup.py"]
    assert reg["save_image"].module == "loom_nodes.image_io"
    wf = {"nodes": {"d": {"type": "plug_double", "inputs": {"x": 21}},
                    "o": {"type": "plug_out", "inputs": {"x": {"node": "d", "output": "int"}}}}}
    assert Executor(reg, settings=settings).run(wf).outputs["o"]["int"] == 42


def test_extra_custom_nodes_dir(tmp_path):
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "extra_nodes.py").write_text(textwrap.dedent('''
        from loom import node
        @node
        def extra_neg(x: int = 1) -> int:
            """Negate."""
            return -x
    '''))
    reg = Registry.default(Settings(home=tmp_path / "home", custom_nodes_dirs=[extra]))
    assert "extra_neg" in reg


def test_entry_point_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "ep_plugin").mkdir(parents=True)
    (site / "ep_plugin" / "__init__.py").write_text(textwrap.dedent('''
        from loom import node
        @node(category="ep")
        def ep_square(x: int = 3) -> int:
            """Square."""
            return x * x
    '''))
    dist = site / "ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[loom.nodes]\nsquare = ep_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    broken = tmp_path / "site2"
    (broken / "ep_broken-1.0.dist-info").mkdir(parents=True)
    (broken / "ep_broken-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-broken\nVersion: 1.0\n")
    (broken / "ep_broken-1.0.dist-info" / "entry_points.txt").write_text("[loom.nodes]\nbad = no_such_module_xyz\n")
    monkeypatch.syspath_prepend(str(broken))
    reg = Registry.default(Settings(home=tmp_path))
    assert "ep_square" in reg and reg["ep_square"].category == "ep"
    assert any("no_such_module_xyz" in e.plugin for e in reg.plugin_errors)
    sys.modules.pop("ep_plugin", None)
