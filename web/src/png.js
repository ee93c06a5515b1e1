// Reads the text chunks of a PNG (tEXt, zTXt, iTXt) to find the embedded workflow.

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Is this buffer a PNG? */
export function isPng(buffer) {
  const b = new Uint8Array(buffer, 0, Math.min(8, buffer.byteLength));
  return b.length === 8 && SIGNATURE.every((v, i) => b[i] === v);
}

/** All text chunks of a PNG as {keyword: text}. */
export async function pngText(buffer) {
  if (!isPng(buffer)) throw new Error("not a PNG file");
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const out = {};
  let pos = 8;
  while (pos + 8 <= bytes.length) {
    const length = view.getUint32(pos);
    const type = latin1.decode(bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === "IEND") break;
    const zero = data.indexOf(0);
    if (zero > 0 && (type === "tEXt" || type === "zTXt" || type === "iTXt")) {
      const key = latin1.decode(data.subarray(0, zero));
      if (type === "tEXt") {
        out[key] = latin1.decode(data.subarray(zero + 1));
      } else if (type === "zTXt") {
        out[key] = latin1.decode(await inflate(data.subarray(zero + 2)));
      } else {
        const compressed = data[zero + 1] === 1;
        let p = zero + 3;
        const langEnd = data.indexOf(0, p);
        p = langEnd + 1;
        const transEnd = data.indexOf(0, p);
        const body = data.subarray(transEnd + 1);
        out[key] = utf8.decode(compressed ? await inflate(body) : body);
      }
    }
    pos += 12 + length;
  }
  return out;
}

/** The workflow JSON carried by a Loom PNG (throws with a clear message when absent). */
export async function workflowFromPng(buffer) {
  const text = await pngText(buffer);
  const raw = text["loom.workflow"];
  if (!raw) throw new Error("this PNG carries no Loom workflow");
  return JSON.parse(raw);
}
