"""Loom's graph vs diffusers' pipelines on a GPU: speed, peak memory, precision, offload.

Random-weight SD 1.5-architecture UNet + VAE + CLIP-L (and SDXL at 1024², optionally a
reduced-depth Flux transformer) are built on the device from the configs Loom ships; the
same module objects run through Loom's executor (load → encode ×2 → empty latent → sample →
decode) and through ``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline``, alternating,
after a warm-up, with the same initial noise (drawn on the CPU). Each row is the median of
``--repeat`` runs of each side.

    python bench/gpu.py                       # the full plan on CUDA (docs/performance.md)
    python bench/gpu.py --compile             # also Loom with torch.compile vs plain diffusers
    python bench/gpu.py --tiny --device cpu   # dry run: tiny modules, 64², 2 steps, fp32

Columns: ``s/run`` end-to-end seconds (encode + steps + decode), ``it/s`` = steps / s/run,
``ratio`` Loom it/s ÷ diffusers it/s, ``peak GiB`` = ``torch.cuda.max_memory_allocated``,
``TFLOP/s`` = UNet FLOPs per run (counted with torch's FlopCounterMode) / s/run, ``match`` =
max |Loom − diffusers| over the images in [0, 1].
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _gpu_checks import determinism, offload  # noqa: E402
from _gpu_flux import build_flux  # noqa: E402
from _gpu_models import MODELS, build  # noqa: E402

from loom import Executor, Registry, Settings  # noqa: E402

H200_PEAK_TFLOPS = 989.0  # dense bf16/fp16 tensor-core peak of an H200 SXM (NVIDIA's data sheet)
NODE_MODULES = ["loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents", "loom_nodes.vae_nodes",
                "loom_nodes.transformers", "_gpu_models"]
log = logging.getLogger("bench.gpu")

try:  # the pipelines warn about casting random-weight modules; not news here
    from diffusers.utils import logging as _dlog
    _dlog.set_verbosity_error()
except ImportError:  # pragma: no cover
    pass


@dataclass
class Row:
    """One measured configuration."""

    model: str
    dtype: str
    batch: int
    size: int
    variant: str               # "plain" or "compile:<mode>"
    loom_s: float
    diffusers_s: float
    loom_peak_gib: float
    diffusers_peak_gib: float
    tflops: float
    match: float
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Loom it/s ÷ diffusers it/s (> 1: Loom is faster)."""
        return self.diffusers_s / self.loom_s if self.loom_s else float("nan")


def registry() -> Registry:
    """Only the nodes the benchmark graph uses, plus the bench input/output nodes."""
    import importlib

    reg = Registry()
    for m in NODE_MODULES:
        importlib.import_module(m)
        reg.add_module(m)
    return reg


def sync(device: torch.device) -> None:
    """Wait for the device (timings include all queued work)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(seconds, peak GiB since the start, result) of one call."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return dt, peak, out


class Bench:
    """Runs the alternating Loom / diffusers measurements for one family and dtype."""

    def __init__(self, args: argparse.Namespace, device: torch.device, home: Path) -> None:
        self.args, self.device, self.home = args, device, home
        self.reg = registry()

    def executor(self, precision: str, **settings: Any) -> Executor:
        return Executor(self.reg, settings=Settings(home=self.home, device=str(self.device), precision=precision,
                                                    **settings))

    def measure(self, fam: Any, name: str, precision: str, batch: int, size: int,
                variant: str = "plain", loom_settings: dict[str, Any] | None = None) -> Row:
        """Loom and diffusers on ``fam`` (an SD ``Family`` or a ``FluxFamily``), alternating."""
        a, dev = self.args, self.device
        MODELS[name] = fam.bundle()
        ex = self.executor(precision, **(loom_settings or {}))
        pipe = fam.pipeline()
        cfg = a.flux_guidance if fam.arch == "flux" else a.cfg

        def loom_run(seed: int) -> torch.Tensor:
            ex.cache.clear()  # models stay loaded (as in a server); every node runs again
            return ex.run(fam.workflow(name, size, batch, a.steps, cfg, seed)).outputs["o"]["image"]

        def diffusers_run(seed: int) -> torch.Tensor:
            with torch.no_grad():
                return fam.run_pipeline(pipe, size, batch, a.steps, cfg, seed).float().cpu()

        for _ in range(a.warmup):  # loads, cuDNN autotuning, compilation
            loom_run(0)
            diffusers_run(0)
        match = (loom_run(0) - diffusers_run(0)).abs().max().item()
        times: dict[str, list[float]] = {"loom": [], "diffusers": []}
        peaks: dict[str, list[float]] = {"loom": [], "diffusers": []}
        for i in range(a.repeat):
            order = ("loom", "diffusers") if i % 2 == 0 else ("diffusers", "loom")
            for side in order:
                fn = loom_run if side == "loom" else diffusers_run
                dt, peak, _ = timed(dev, lambda: fn(i + 1))
                times[side].append(dt)
                peaks[side].append(peak)
        flops = fam.flops(batch, size) * a.steps if dev.type == "cuda" else 0.0
        loom_s = statistics.median(times["loom"])
        MODELS.pop(name, None)
        return Row(model=fam.arch, dtype=precision, batch=batch, size=size, variant=variant,
                   loom_s=loom_s, diffusers_s=statistics.median(times["diffusers"]),
                   loom_peak_gib=statistics.median(peaks["loom"]),
                   diffusers_peak_gib=statistics.median(peaks["diffusers"]),
                   tflops=flops / loom_s / 1e12 if loom_s else 0.0, match=match, steps=a.steps,
                   extra={"attention": fam.attention(),
                          "loom_runs_s": [round(t, 4) for t in times["loom"]],
                          "diffusers_runs_s": [round(t, 4) for t in times["diffusers"]]})


def table(rows: list[Row], device_name: str) -> str:
    """The markdown table of docs/performance.md."""
    head = ("| model | dtype | batch | size | variant | Loom s/run | diffusers s/run | Loom it/s | ratio "
            "| Loom peak GiB | diffusers peak GiB | TFLOP/s (% of peak) | match |")
    lines = [f"GPU: {device_name}", "", head, "|" + "---|" * 13]
    for r in rows:
        pct = f"{100 * r.tflops / H200_PEAK_TFLOPS:.1f} %" if r.tflops else "–"
        lines.append(f"| {r.model} | {r.dtype} | {r.batch} | {r.size}² | {r.variant} | {r.loom_s:.3f} "
                     f"| {r.diffusers_s:.3f} | {r.steps / r.loom_s:.2f} | {r.ratio:.3f} | {r.loom_peak_gib:.2f} "
                     f"| {r.diffusers_peak_gib:.2f} | {r.tflops:.1f} ({pct}) | {r.match:.2e} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (cuda when present), cuda, cpu")
    ap.add_argument("--dtypes", default="fp16,bf16", help="comma-separated: fp16, bf16, fp32")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--size", type=int, default=512, help="SD 1.5 image size")
    ap.add_argument("--xl-size", type=int, default=1024, help="SDXL image size (batch 1); 0 skips SDXL")
    ap.add_argument("--flux-size", type=int, default=1024,
                    help="reduced-depth Flux transformer image size (batch 1, bf16); 0 skips Flux")
    ap.add_argument("--flux-guidance", type=float, default=3.5, help="Flux's distilled guidance")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per side (median)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", nargs="?", const="default", default="off",
                    help="also measure Loom with --compile MODE against plain diffusers (SD 1.5, first dtype)")
    ap.add_argument("--compile-batches", default="1", help="batches measured with --compile")
    ap.add_argument("--channels-last", action="store_true", help="also measure Loom with --channels-last")
    ap.add_argument("--no-offload", action="store_true", help="skip the --vram-budget-gb check")
    ap.add_argument("--no-determinism", action="store_true", help="skip the CPU/GPU same-seed check")
    ap.add_argument("--tiny", action="store_true", help="tiny modules, 64², 2 steps, 1 repeat: a dry run")
    ap.add_argument("--json", type=Path, default=None, help="also write every row as JSON here")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    if args.tiny:
        args.size, args.steps, args.repeat = 64, 2, 1
        args.xl_size = 64 if args.xl_size else 0
        args.flux_size = 64 if args.flux_size else 0
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from loom.devices import resolve_device
    device = resolve_device(args.device)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if device.type == "cpu":
        dtypes = ["fp32"]  # half precision is a GPU matter (Loom computes fp32 on the CPU)
    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    batches = [int(b) for b in args.batches.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    rows: list[Row] = []
    checks: dict[str, Any] = {}

    def report(row: Row | None = None) -> str:
        """Log the new row and rewrite the outputs (a run cut short keeps what it measured)."""
        if row is not None:
            rows.append(row)
            log.info("%s", table([row], name).splitlines()[-1])
        text = table(rows, name) + "\n\n" + "\n".join(f"- {k}: {json.dumps(v)}" for k, v in checks.items())
        if args.markdown:
            args.markdown.write_text(text + "\n")
        if args.json:
            args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "args": {
                k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "rows": [asdict(r) | {"ratio": r.ratio} for r in rows], "checks": checks}, indent=1))
        return text

    def free() -> None:
        if device.type == "cuda":
            torch.cuda.empty_cache()

    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args, device, Path(tmp))
        for prec in dtypes:
            fam = build("sd1", device, torch_dtype[prec], tiny=args.tiny)
            for b in batches:
                report(bench.measure(fam, "sd1", prec, b, args.size))
            if args.channels_last and prec == dtypes[0]:
                report(bench.measure(fam, "sd1", prec, batches[0], args.size, "channels-last",
                                     {"channels_last": True}))
            del fam
            free()
        for prec in dtypes if args.xl_size else []:
            fam = build("sdxl", device, torch_dtype[prec], tiny=args.tiny)
            report(bench.measure(fam, "sdxl", prec, 1, args.xl_size))
            del fam
            free()
        if args.flux_size:
            prec = "bf16" if "bf16" in dtypes else dtypes[0]
            fam = build_flux(device, torch_dtype[prec], tiny=args.tiny)
            report(bench.measure(fam, "flux", prec, 1, args.flux_size))
            del fam
            free()
        if not args.no_offload:
            checks["offload"] = offload(bench, args, device, dtypes[0])
            report()
        if not args.no_determinism:
            checks["determinism"] = determinism(bench, args, device, dtypes[0])
            report()
        if args.compile != "off":  # last: compiling takes minutes on a real UNet
            fam = build("sd1", device, torch_dtype[dtypes[0]], tiny=args.tiny)
            for b in [int(x) for x in args.compile_batches.split(",")]:
                report(bench.measure(fam, "sd1", dtypes[0], b, args.size, f"compile:{args.compile}",
                                     {"compile": args.compile}))
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
