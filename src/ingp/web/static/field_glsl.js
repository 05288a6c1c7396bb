// GLSL ES 3.00 source of one field (grid encoding + MLP), generated from its model.json record.
// fieldSource(name, field, rowsPerLayer, rowBase) declares samplers `${name}_table`, `${name}_weights` and
//   void ${name}_eval(vecD x, out float y[OUT])   // x in [0,1]^D (float for D = 1), y = the first OUT outputs
// networkSource(name, record, rowBase) does the same for a plain network (no grid), taking float x[IN].
// Levels and MLP layers stay loops (an unrolled 2x64 MLP crashed SwiftShader's compiler, REFERENCE §8).

const PRIMES = ["1u", "2654435761u", "805459861u", "3674653429u", "2097192037u", "1434869437u", "2165219737u"];

export function glslFloat(v) {
  const s = Number(v).toString();  // shortest round-trip text of the double, itself an exact float32
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

// Activations on vec4 (mix with a bvec selects, so the branch not taken cannot turn into NaN).
const ACTIVATIONS = {
  None: "v",
  ReLU: "max(v, 0.0)",
  LeakyReLU: "mix(0.01 * v, v, greaterThan(v, vec4(0.0)))",
  Exponential: "exp(v)",
  Sine: "sin(v)",
  Sigmoid: "1.0 / (1.0 + exp(-v))",
  Squareplus: "mix(2.0 / (sqrt(100.0 * v * v + 4.0) - 10.0 * v), 0.5 * (10.0 * v + sqrt(100.0 * v * v + 4.0)), " +
    "greaterThanEqual(v, vec4(0.0))) / 10.0",
  Softplus: "mix(log(1.0 + exp(10.0 * v)) / 10.0, v, greaterThan(v, vec4(4.0)))",
  Tanh: "tanh(v)",
  SiLU: "v / (1.0 + exp(-v))",
};

// Per-dimension index terms of the lower and upper vertex, and their weights (unrolled: d is at most 7).
function cornerSetup(name, d) {
  const lines = [];
  for (let i = 0; i < d; i++) {
    const x = d === 1 ? "cellf" : `cellf[${i}]`, t = d === 1 ? "t" : `t[${i}]`;
    lines.push(`    uint c${i} = uint(int(${x}));`,
      `    uint k${i} = hashed ? ${name}_PRIMES[${i}] : (${name}_MODE[l] == 1 ? stride : 0u);`,
      `    uint lo${i} = c${i} * k${i}, hi${i} = (c${i} + 1u) * k${i};`,
      `    float wl${i} = 1.0 - ${t}, wh${i} = ${t};`,
      `    stride *= ${name}_RES[l];`);
  }
  return lines.join("\n");
}

// The sum over the 2^d corners (one corner for Nearest): XOR of the terms when hashed, their sum when dense.
function cornerSum(name, d, interp) {
  const corners = interp === "Nearest" ? 1 : 1 << d;
  const lines = [];
  for (let c = 0; c < corners; c++) {
    const terms = Array.from({ length: d }, (_, i) => ((c >> i) & 1 ? `hi${i}` : `lo${i}`));
    const weight = Array.from({ length: d }, (_, i) => ((c >> i) & 1 ? `wh${i}` : `wl${i}`)).join(" * ");
    lines.push(`    f += ${interp === "Nearest" ? "" : `${weight} * `}${name}_entry(${name}_OFFSET[l] + ` +
      `(hashed ? ${terms.join(" ^ ")} : ${terms.join(" + ")}) % ${name}_SIZE[l]);`);
  }
  return lines.join("\n");
}

// The MLP's layer loop over the activations a[] (input already in place), result in a[]: bias-free matrices,
// four output neurons per iteration, the hidden activation between layers and the output one after the last.
function layerLoop(name, nLayers) {
  return `  for (int layer = 0; layer < ${nLayers}; layer++) {
    bool last = layer == ${nLayers - 1};
    for (int o = 0; o < (${name}_ROWS[layer] + 3) / 4; o++) {  // four output neurons at a time
      vec4 acc = vec4(0.0);
      int row = ${name}_BASE[layer] + 4 * o;
      for (int k = 0; k < ${name}_COLS[layer] / 4; k++) {
        vec4 x = a[k];
        acc += vec4(dot(texelFetch(${name}_weights, ivec2(k, row), 0), x),
                    dot(texelFetch(${name}_weights, ivec2(k, row + 1), 0), x),
                    dot(texelFetch(${name}_weights, ivec2(k, row + 2), 0), x),
                    dot(texelFetch(${name}_weights, ivec2(k, row + 3), 0), x));
      }
      b[o] = last ? ${name}_output(acc) : ${name}_hidden(acc);
    }
    for (int o = 0; o < (${name}_ROWS[layer] + 3) / 4; o++) a[o] = b[o];
  }
`;
}

// The shared constants and functions of a network: row / column counts, row bases, activations.
function networkHeader(name, net, out, rowBase) {
  const inW = net.input_width;
  const widths = [inW, ...Array(net.n_hidden_layers).fill(net.n_neurons)];
  const rows = [...Array(net.n_hidden_layers).fill(net.n_neurons), out];  // last layer: only the used rows
  for (const a of [net.activation, net.output_activation]) if (!(a in ACTIVATIONS)) throw new Error(`activation ${a}`);
  return {
    maxW: Math.max(inW, Math.ceil(net.n_neurons / 4) * 4, 4),
    nLayers: rows.length,
    source: `
uniform highp sampler2D ${name}_weights;
const int ${name}_ROWS[${rows.length}] = int[${rows.length}](${rows.join(", ")});
const int ${name}_COLS[${rows.length}] = int[${rows.length}](${widths.join(", ")});
const int ${name}_BASE[${rows.length}] = int[${rows.length}](${rowBase.join(", ")});
vec4 ${name}_hidden(vec4 v) { return ${ACTIVATIONS[net.activation]}; }
vec4 ${name}_output(vec4 v) { return ${ACTIVATIONS[net.output_activation]}; }
`,
  };
}

// A plain network (no encoding; NeRF's colour MLP): declares `${name}_weights` and
//   void ${name}_eval(float x[IN], out float y[OUT])   // x padded with input_pad_value to input_width
export function networkSource(name, record, rowBase) {
  const net = record.network, nIn = record.n_input_dims, out = record.n_output_dims;
  const head = networkHeader(name, net, out, rowBase);
  const padStart = net.pad_before ? net.input_width - nIn : 0;
  return `${head.source}
void ${name}_eval(float x[${nIn}], out float y[${out}]) {
  vec4 a[${head.maxW / 4}];
  vec4 b[${head.maxW / 4}];
  for (int k = 0; k < ${head.maxW / 4}; k++) a[k] = vec4(${glslFloat(net.input_pad_value)});
  for (int i = 0; i < ${nIn}; i++) a[(${padStart} + i) / 4][(${padStart} + i) % 4] = x[i];
${layerLoop(name, head.nLayers)}  for (int o = 0; o < ${out}; o++) y[o] = a[o / 4][o % 4];
}
`;
}

export function fieldSource(name, field, rowsPerLayer, rowBase) {
  const enc = field.encoding, net = field.network;
  const d = field.n_input_dims, L = enc.n_levels, F = enc.n_features_per_level;
  const nIn = L * F, inW = net.input_width, out = field.n_output_dims;
  const head = networkHeader(name, net, out, rowBase);
  const maxW = head.maxW;
  const vec = d === 1 ? "float" : `vec${d}`;
  const comp = (v, i) => (d === 1 ? v : `${v}[${i}]`);
  const swz = ["r", "rg", null, "rgba"][F - 1];
  const list = (xs, f) => xs.map(f).join(", ");
  const modes = { hash: 0, dense: 1, zero: 2 };
  const padStart = net.pad_before ? inW - nIn : 0;
  const interp = enc.interpolation;
  return `
uniform highp sampler2DArray ${name}_table;
${head.source}
const float ${name}_SCALE[${L}] = float[${L}](${list(enc.levels, (l) => glslFloat(l.scale))});
const uint ${name}_RES[${L}] = uint[${L}](${list(enc.levels, (l) => `${l.resolution}u`)});
const uint ${name}_SIZE[${L}] = uint[${L}](${list(enc.levels, (l) => `${l.size}u`)});
const uint ${name}_OFFSET[${L}] = uint[${L}](${list(enc.levels, (l) => `${l.offset}u`)});
const int ${name}_MODE[${L}] = int[${L}](${list(enc.levels, (l) => modes[l.mode])});
const uint ${name}_PRIMES[7] = uint[7](${PRIMES.join(", ")});

${F === 1 ? "float" : `vec${F}`} ${name}_entry(uint i) {
  uint row = i / 2048u;
  ivec3 at = ivec3(int(i % 2048u), int(row % ${rowsPerLayer}u), int(row / ${rowsPerLayer}u));
  return texelFetch(${name}_table, at, 0).${swz};
}
void ${name}_eval(${vec} x, out float y[${out}]) {
  vec4 a[${maxW / 4}];  // activations, four per vec4
  vec4 b[${maxW / 4}];
  for (int k = 0; k < ${maxW / 4}; k++) a[k] = vec4(${glslFloat(net.input_pad_value)});
  for (int l = 0; l < ${L}; l++) {
    ${vec} pos = x * ${name}_SCALE[l] + 0.5;
    ${vec} cellf = floor(pos);
    ${vec} t = pos - cellf;
    ${interp === "Smoothstep" ? "t = t * t * (3.0 - 2.0 * t);" : ""}
    bool hashed = ${name}_MODE[l] == 0;
    uint stride = 1u;
${cornerSetup(name, d)}
    ${F === 1 ? "float" : `vec${F}`} f = ${F === 1 ? "0.0" : `vec${F}(0.0)`};
${cornerSum(name, d, interp)}
    int at = ${padStart} + l * ${F};
    ${F === 4 ? "a[at / 4] = f;" : Array.from({ length: F }, (_, j) => `a[(at + ${j}) / 4][(at + ${j}) % 4] = ${F === 1 ? "f" : `f[${j}]`};`).join("\n    ")}
  }
${layerLoop(name, head.nLayers)}  for (int o = 0; o < ${out}; o++) y[o] = a[o / 4][o % 4];
}
`;
}
