"""Rewrite the ComfyUI mapping table in docs/comfyui.md from the mapping code.

    python scripts/comfyui_doc.py          # update the page
    python scripts/comfyui_doc.py --check  # exit 1 when the page is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "comfyui.md"


def main() -> int:
    from loom_nodes.comfyui.doc import render, update
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the page is current")
    ns = parser.parse_args()
    if ns.check:
        current = PAGE.read_text(encoding="utf-8")
        if render(current) != current:
            print(f"{PAGE} is out of date: run python scripts/comfyui_doc.py", file=sys.stderr)
            return 1
        print(f"{PAGE} is current")
        return 0
    print(f"{PAGE}: {'updated' if update(PAGE) else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
