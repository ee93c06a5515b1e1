// Socket and link colours by type name. Known types get familiar colours; any
// other type (a plugin's own class) gets a stable colour from a hash of its name.

const KNOWN = {
  Image: "#64b5f6",
  Mask: "#81c784",
  Latent: "#ff9cf9",
  Conditioning: "#ffa931",
  TextEncoder: "#ffd500",
  Denoiser: "#b39ddb",
  VAE: "#ff6e6e",
  Scheduler: "#4dd0e1",
  Generator: "#a1887f",
  FeatureExtractor: "#aed581",
  int: "#9ccc65",
  float: "#c5e1a5",
  seed: "#9ccc65",
  str: "#e6ee9c",
  bool: "#90a4ae",
  combo: "#b0bec5",
  model_file: "#ce93d8",
  image_file: "#80cbc4",
  "*": "#cccccc",
};

function hashColour(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return `hsl(${h % 360}, 55%, 65%)`;
}

/** The colour of a socket type. */
export function typeColour(type) {
  const name = String(type);
  return KNOWN[name] ?? hashColour(name);
}

/** Registers colours for every type with litegraph (links and slots). */
export function applyTypeColours(LGraphCanvas, canvas, types) {
  for (const type of types) {
    const colour = typeColour(type);
    LGraphCanvas.link_type_colors[type] = colour;
    canvas.default_connection_color_byType[type] = colour;
    canvas.default_connection_color_byTypeOff[type] = colour;
  }
}
