"""Super-resolution networks (ESRGAN / Real-ESRGAN RRDBNet, SwinIR) and tiled inference."""
from .rrdbnet import NotRRDB, RRDBConfig, RRDBNet, build, detect, layout, to_new_layout, unwrap
from .swinir import NotSwinIR, SwinIR, SwinIRConfig, is_swinir
from .tiling import axis_weights, run_tiled, tile_starts

__all__ = ["NotRRDB", "RRDBConfig", "RRDBNet", "build", "detect", "layout", "to_new_layout",
           "unwrap", "NotSwinIR", "SwinIR", "SwinIRConfig", "is_swinir", "axis_weights", "run_tiled",
           "tile_starts"]
