// Uploading a field's arrays into textures.
// Grid table (n_entries, F) float16 -> TEXTURE_2D_ARRAY, 2048 texels wide, R16F / RG16F / RGBA16F for F = 1 / 2 / 4:
//   entry i -> x = i % 2048, row = i / 2048, layer = row / rowsPerLayer, y = row % rowsPerLayer.
// MLP weights: every matrix (out, in) row-major -> one RGBA32F (or RGBA16F) 2-D texture, one texture row per output
//   neuron, in/4 texels per row; matrices stacked in layer order (rowBase[layer]).
// Bytes (NeRF's occupancy bitfield) -> R8UI 2-D texture, 2048 wide (uploadBytes).

export const TABLE_WIDTH = 2048;
const FORMATS = { 1: ["R16F", "RED"], 2: ["RG16F", "RG"], 4: ["RGBA16F", "RGBA"] };

export function uploadTable(gl, table, nEntries, features) {
  const [internal, format] = FORMATS[features];
  const rows = Math.ceil(nEntries / TABLE_WIDTH);
  const maxRows = Math.min(gl.getParameter(gl.MAX_TEXTURE_SIZE), 2048);
  const rowsPerLayer = Math.min(rows, maxRows);
  const layers = Math.ceil(rows / rowsPerLayer);
  if (layers > gl.getParameter(gl.MAX_ARRAY_TEXTURE_LAYERS)) throw new Error(`grid table too large: ${nEntries} entries`);
  const data = new Uint16Array(TABLE_WIDTH * rowsPerLayer * layers * features);
  data.set(table);
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D_ARRAY, tex);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  gl.texImage3D(gl.TEXTURE_2D_ARRAY, 0, gl[internal], TABLE_WIDTH, rowsPerLayer, layers, 0, gl[format], gl.HALF_FLOAT, data);
  for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D_ARRAY, p, gl.NEAREST);
  return { tex, rowsPerLayer };
}

export function uploadWeights(gl, layers) {
  // layers: [{data: Float32Array | Uint16Array, rows, cols}]
  const width = Math.max(...layers.map((l) => l.cols)) / 4;
  const height = layers.reduce((a, l) => a + l.rows, 0);
  const half = layers[0].data instanceof Uint16Array;
  const data = half ? new Uint16Array(width * 4 * height) : new Float32Array(width * 4 * height);
  const rowBase = [];
  let row = 0;
  for (const l of layers) {
    rowBase.push(row);
    for (let r = 0; r < l.rows; r++, row++) data.set(l.data.subarray(r * l.cols, (r + 1) * l.cols), row * width * 4);
  }
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.texImage2D(gl.TEXTURE_2D, 0, half ? gl.RGBA16F : gl.RGBA32F, width, height, 0, gl.RGBA,
    half ? gl.HALF_FLOAT : gl.FLOAT, data);
  for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
  return { tex, rowBase };
}

// Bytes (a packed bitfield) -> R8UI 2-D texture, TABLE_WIDTH wide: byte b is texel (b % 2048, b / 2048), read with
// texelFetch on a usampler2D (integer textures are never filtered).
export function uploadBytes(gl, bytes) {
  const rows = Math.ceil(bytes.length / TABLE_WIDTH);
  if (rows > gl.getParameter(gl.MAX_TEXTURE_SIZE)) throw new Error(`bitfield too large: ${bytes.length} bytes`);
  const data = new Uint8Array(TABLE_WIDTH * rows);
  data.set(bytes);
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8UI, TABLE_WIDTH, rows, 0, gl.RED_INTEGER, gl.UNSIGNED_BYTE, data);
  for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
  return { tex };
}
