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
from _gpu_models import MODELS, Family, build, loom_bundle, pipeline  # noqa: E402

from loom import Executor, Registry, Settings  # noqa: E402

PROMPT, NEGATIVE = "a photo of a red fox in the snow, detailed", "blurry, low quality"
H200_PEAK_TFLOPS = 989.0  # dense bf16/fp16 tensor-core peak of an H200 SXM (NVIDIA's data sheet)
NODE_MODULES = ["loom_nodes.text_encoders", "loom_nodes.sampling", "loom_nodes.latents", "loom_nodes.vae_nodes",
                "_gpu_models"]
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


def workflow(name: str, size: int, batch: int, steps: int, cfg: float, seed: int) -> dict[str, Any]:
    """The benchmark graph (the same shape as workflows/text_to_image.json)."""
    def link(n: str, o: str) -> dict[str, str]:
        return {"node": n, "output": o}
    return {"nodes": {
        "m": {"type": "bench_gpu_model", "inputs": {"name": name}},
        "p": {"type": "text_encode", "inputs": {"encoder": link("m", "text_encoder"), "text": PROMPT}},
        "n": {"type": "text_encode", "inputs": {"encoder": link("m", "text_encoder"), "text": NEGATIVE}},
        "e": {"type": "empty_latent", "inputs": {"width": size, "height": size, "batch": batch,
                                                 "vae": link("m", "vae")}},
        "sc": {"type": "scheduler", "inputs": {"name": "euler"}},
        "s": {"type": "sample", "inputs": {"denoiser": link("m", "denoiser"), "positive": link("p", "conditioning"),
                                           "negative": link("n", "conditioning"), "latent": link("e", "latent"),
                                           "scheduler": link("sc", "scheduler"), "steps": steps, "cfg": cfg,
                                           "seed": seed}},
        "d": {"type": "vae_decode", "inputs": {"vae": link("m", "vae"), "latent": link("s", "latent")}},
        "o": {"type": "bench_gpu_keep", "inputs": {"images": link("d", "image")}},
    }}


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


def unet_flops(fam: Family, batch: int, size: int, device: torch.device, dtype: torch.dtype) -> float:
    """FLOPs of one guided UNet call (batch 2 × ``batch``) at ``size``², counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    u = fam.unet
    h = size // 8
    x = torch.randn(2 * batch, u.config.in_channels, h, h, device=device, dtype=dtype)
    cross = u.config.cross_attention_dim
    states = torch.randn(2 * batch, 77, cross if isinstance(cross, int) else cross[0], device=device, dtype=dtype)
    kw: dict[str, Any] = {}
    if fam.arch == "sdxl":
        pooled = fam.encoders[1].config.projection_dim
        kw["added_cond_kwargs"] = {"text_embeds": torch.randn(2 * batch, pooled, device=device, dtype=dtype),
                                   "time_ids": torch.zeros(2 * batch, 6, device=device, dtype=dtype)}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        u(x, torch.tensor(500, device=device), encoder_hidden_states=states, **kw)
    return float(counter.get_total_flops())


class Bench:
    """Runs the alternating Loom / diffusers measurements for one family and dtype."""

    def __init__(self, args: argparse.Namespace, device: torch.device, home: Path) -> None:
        self.args, self.device, self.home = args, device, home
        self.reg = registry()

    def executor(self, precision: str, **settings: Any) -> Executor:
        return Executor(self.reg, settings=Settings(home=self.home, device=str(self.device), precision=precision,
                                                    **settings))

    def measure(self, fam: Family, name: str, precision: str, batch: int, size: int,
                variant: str = "plain", loom_settings: dict[str, Any] | None = None) -> Row:
        a, dev = self.args, self.device
        dtype = next(fam.unet.parameters()).dtype
        MODELS[name] = loom_bundle(fam)
        ex = self.executor(precision, **(loom_settings or {}))
        pipe = pipeline(fam, dev)
        latent_shape = (batch, fam.unet.config.in_channels, size // 8, size // 8)

        def loom_run(seed: int) -> torch.Tensor:
            ex.cache.clear()  # models stay loaded (as in a server); every node runs again
            return ex.run(workflow(name, size, batch, a.steps, a.cfg, seed)).outputs["o"]["image"]

        def diffusers_run(seed: int) -> torch.Tensor:
            noise = torch.randn(latent_shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
            with torch.no_grad():
                out = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, height=size, width=size,
                           num_images_per_prompt=batch, num_inference_steps=a.steps, guidance_scale=a.cfg,
                           latents=noise.to(dev, dtype), output_type="pt").images
            return out.float().cpu()

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
        flops = unet_flops(fam, batch, size, dev, dtype) * a.steps if dev.type == "cuda" else 0.0
        loom_s = statistics.median(times["loom"])
        MODELS.pop(name, None)
        return Row(model=fam.arch, dtype=precision, batch=batch, size=size, variant=variant,
                   loom_s=loom_s, diffusers_s=statistics.median(times["diffusers"]),
                   loom_peak_gib=statistics.median(peaks["loom"]),
                   diffusers_peak_gib=statistics.median(peaks["diffusers"]),
                   tflops=flops / loom_s / 1e12 if loom_s else 0.0, match=match, steps=a.steps,
                   extra={"attention": type(next(iter(fam.unet.attn_processors.values()))).__name__,
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
