"""Super-resolution networks (ESRGAN / Real-ESRGAN RRDBNet) and tiled inference."""
from .rrdbnet import NotRRDB, RRDBConfig, RRDBNet, build, detect, layout, to_new_layout, unwrap
from .tiling import axis_weights, run_tiled, tile_starts

__all__ = ["NotRRDB", "RRDBConfig", "RRDBNet", "build", "detect", "layout", "to_new_layout",
           "unwrap", "axis_weights", "run_tiled", "tile_starts"]
