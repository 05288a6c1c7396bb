// Loading an export: model.json (metadata, buffer table) + model.bin (little-endian arrays).
// loadModel(base) -> {meta, buffers: {name: Float32Array | Uint16Array (float16 bits) | Uint8Array}}

const VIEWS = { float32: Float32Array, float16: Uint16Array, uint8: Uint8Array };

export async function loadModel(base) {
  const metaResponse = await fetch(`${base}model.json`);
  if (!metaResponse.ok) throw new Error(`model.json: HTTP ${metaResponse.status}`);
  const meta = await metaResponse.json();
  if (meta.format !== "ingp-web" || meta.version !== 1) throw new Error("model.json: not an ingp-web v1 export");
  const binResponse = await fetch(`${base}model.bin`);
  if (!binResponse.ok) throw new Error(`model.bin: HTTP ${binResponse.status}`);
  const blob = await binResponse.arrayBuffer();
  if (blob.byteLength !== meta.bin_bytes) throw new Error(`model.bin: ${blob.byteLength} bytes, model.json says ${meta.bin_bytes}`);
  const buffers = {};
  for (const [name, b] of Object.entries(meta.buffers)) {
    const View = VIEWS[b.dtype];
    if (!View) throw new Error(`model.json: buffer ${name} has unsupported dtype ${b.dtype}`);
    const count = b.shape.reduce((a, c) => a * c, 1);
    if (b.offset + count * View.BYTES_PER_ELEMENT > blob.byteLength) throw new Error(`model.bin: ${name} is cut short`);
    buffers[name] = new View(blob, b.offset, count);  // x86 and ARM browsers are little-endian
  }
  return { meta, buffers };
}
