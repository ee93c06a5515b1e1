"""The ``loom`` command: run, validate, nodes (and serve, from the server package)."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import Interrupted, LoomError, NodeError, ValidationError, WorkflowFileError
from .settings import Settings
from .workflow import NotJSONError, parse_json

COMMAND_ENTRY_POINTS = "loom.commands"


def common_parser() -> argparse.ArgumentParser:
    """The flags every command takes."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--home", type=Path, default=None,
                   help="home folder with models/, custom_nodes/, input/, output/, user/ (default: .)")
    g.add_argument("--models-dir", action="append", type=Path, default=[],
                   help="another model root (repeatable)")
    g.add_argument("--custom-nodes", action="append", type=Path, default=[],
                   help="another custom_nodes folder (repeatable)")
    g.add_argument("--output-dir", type=Path, default=None, help="where saved images go")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    g.add_argument("--vram-budget-gb", type=float, default=None,
                   help="GPU memory loaded models may use before the least recently used go to CPU RAM")
    g.add_argument("--ram-budget-gb", type=_positive_gb, default=None,
                   help="CPU RAM loaded models and cached outputs may use before the least recently "
                        "used are released (default: half of this machine's RAM)")
    g.add_argument("--compile", nargs="?", const="default", default="off", choices=COMPILE_MODES,
                   help="torch.compile the denoiser on CUDA (first run of a shape compiles; "
                        "MODE: default, reduce-overhead = with CUDA graphs, max-autotune)")
    g.add_argument("--channels-last", action="store_true",
                   help="keep the UNet in channels-last memory format on CUDA")
    g.add_argument("-v", "--verbose", action="store_true", help="log more")
    return p


COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def _positive_gb(text: str) -> float:
    """A size in GB above zero (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GB") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a size above 0 GB")
    return value


def settings_from_args(ns: argparse.Namespace) -> Settings:
    """Settings from the common flags."""
    return Settings(home=ns.home or Path.cwd(), models_dirs=list(ns.models_dir),
                    custom_nodes_dirs=list(ns.custom_nodes), output_dir=ns.output_dir,
                    device=ns.device, precision=ns.precision,
                    vram_budget_gb=ns.vram_budget_gb,
                    ram_budget_gb=getattr(ns, "ram_budget_gb", None),
                    compile=getattr(ns, "compile", "off"), channels_last=getattr(ns, "channels_last", False))


def parse_set(items: Sequence[str]) -> list[tuple[str, str, Any]]:
    """``node.input=VALUE`` → (node, input, value); VALUE is JSON when it parses, else text."""
    out = []
    for item in items:
        target, sep, raw = item.partition("=")
        node_id, dot, name = target.rpartition(".")
        if not sep or not dot or not node_id or not name:
            raise WorkflowFileError(f"--set {item!r}: write node.input=value")
        try:  # the same limits as workflow files: depth, digits, finite numbers
            value = parse_json(raw, f"--set {target}")
        except NotJSONError:
            value = raw
        out.append((node_id, name, value))
    return out


def _load(path: str) -> Any:
    """A Loom workflow file, or another program's converted by an importer (its report on stderr)."""
    from .importers import format_report, load
    wf, report = load(path)
    if report is not None:
        print(format_report(report), file=sys.stderr)
    return wf


def cmd_validate(ns: argparse.Namespace) -> int:
    """Exit 0 when valid, 2 with one line per problem when not, 1 when unreadable."""
    from .registry import Registry
    from .plan import validate
    settings = settings_from_args(ns)
    try:
        wf = _load(ns.workflow)
    except WorkflowFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    reg = Registry.default(settings)
    _warn_plugin_errors(reg)
    from .sweeps import parse_sweeps, sweep_problems
    sweep = parse_sweeps(wf.extra)  # a SweepError is reported by main()
    problems = sweep_problems(wf, sweep, reg, settings) if sweep else validate(wf, reg, settings)
    if ns.json:
        print(json.dumps({"valid": not problems, "problems": [p.to_dict() for p in problems]}, indent=2))
    else:
        for p in problems:
            print(p)
        if not problems:
            cells = f", {len(sweep)} sweep cells" if sweep else ""
            print(f"{ns.workflow}: valid ({len(wf.nodes)} nodes{cells})")
    return 2 if problems else 0


def cmd_nodes(ns: argparse.Namespace) -> int:
    """Print the node schemas (JSON) or a readable list."""
    from .registry import Registry
    settings = settings_from_args(ns)
    reg = Registry.default(settings)
    schemas = reg.schemas(settings)
    if ns.json:
        print(json.dumps(schemas, indent=2, default=str))
    else:
        for s in schemas:
            ins = ", ".join(i["name"] for i in s["inputs"])
            outs = ", ".join(f"{o['name']}: {o['type']}" for o in s["outputs"]) or "—"
            print(f"{s['category']:<18} {s['id']:<24} ({ins}) -> {outs}")
            if s["description"]:
                print(f"{'':<18} {'':<24} {s['description']}")
    _warn_plugin_errors(reg)
    return 0


def _warn_plugin_errors(reg: Any) -> None:
    """One stderr line per plugin that failed to import."""
    for err in reg.plugin_errors:
        print(f"warning: plugin {err.plugin} failed to load: {err.error}", file=sys.stderr)


def cmd_run(ns: argparse.Namespace) -> int:
    """Run a workflow file with progress bars and print where outputs went."""
    from .devices import check_compute
    from .executor import Executor
    from .progress import TqdmObserver
    from .registry import Registry
    settings = settings_from_args(ns)
    check_compute(settings.device, settings.precision)  # a LoomError: one line, exit 1
    wf = _load(ns.workflow)  # a WorkflowFileError is reported by main()
    for node_id, name, value in parse_set(ns.set):
        wf.set_input(node_id, name, value)
    from .sweeps import combine, parse_cli_sweep, parse_sweeps
    sweep = combine(parse_sweeps(wf.extra), [parse_cli_sweep(s) for s in ns.sweep], ns.sweep_mode)
    reg = Registry.default(settings)
    _warn_plugin_errors(reg)
    if sweep is not None:  # a sweep: every cell checked first, then run on one executor
        from .sweep_cli import run_sweep_command
        return run_sweep_command(Executor(reg, settings=settings), wf, sweep)
    observer = TqdmObserver(wf)
    try:
        result = Executor(reg, settings=settings).run(wf, observer)
    except ValidationError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    except NodeError as exc:
        if exc.error_type == "KeyboardInterrupt":  # Ctrl-C inside a node: the run failed there
            print(f"interrupted in {exc.node}", file=sys.stderr)
            return 130
        print(f"error: {exc.node}: {exc.error_type}: {exc.message}", file=sys.stderr)
        if ns.verbose:
            print(exc.traceback, file=sys.stderr)
        return 3
    finally:
        observer.close()
    roots = {"output": settings.outputs, "preview": settings.previews}
    for nid, ui in result.ui.items():
        for img in ui.get("images", []):
            print(f"{nid}: wrote {roots.get(img.get('kind'), settings.outputs) / img['path']}")
        for text in ui.get("text", []):
            print(f"{nid}: {text}")
        for key, value in ui.get("values", {}).items():
            print(f"{nid}: {key} = {value}")
    print(f"done: {len(result.executed)} executed, {len(result.cached)} cached, "
          f"{sum(result.timings.values()):.2f} s in nodes")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, including commands contributed by entry points."""
    common = common_parser()
    parser = argparse.ArgumentParser(prog="loom", description="Loom: node graphs for image generation")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", parents=[common], help="run a workflow (.json or a Loom .png)")
    p.add_argument("workflow")
    p.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="override an input (VALUE is JSON when it parses, else text)")
    p.add_argument("--sweep", action="append", default=[], metavar="NODE.INPUT=VALUES",
                   help="run once per value: a,b,c or start..stop[:step] (repeatable; see docs/evaluation.md)")
    p.add_argument("--sweep-mode", choices=("product", "zip"), default=None,
                   help="combine the --sweep axes: every combination (product, default) or side by side (zip)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", parents=[common], help="check a workflow without running it")
    p.add_argument("workflow")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("nodes", parents=[common], help="list node types")
    p.add_argument("--json", action="store_true", help="the schemas as JSON")
    p.set_defaults(func=cmd_nodes)
    for ep in importlib.metadata.entry_points(group=COMMAND_ENTRY_POINTS):
        try:
            ep.load()(sub, [common])
        except Exception as exc:  # noqa: BLE001 - a broken command must not break the others
            logging.getLogger(__name__).warning("command %s unavailable: %s", ep.name, exc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loom`` console script."""
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(ns, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(ns.func(ns) or 0)
    except (KeyboardInterrupt, Interrupted):
        print("interrupted", file=sys.stderr)
        return 130
    except LoomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
