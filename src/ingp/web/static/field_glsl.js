// GLSL ES 3.00 source of one field (grid encoding + MLP), generated from its model.json record.
// fieldSource(name, field, rowsPerLayer, rowBase) declares samplers `${name}_table`, `${name}_weights` and
//   float ${name}_eval(vecD x, out float y[OUT])   // x in [0,1]^D, y = the MLP's first OUT outputs
// Levels and MLP layers stay loops (an unrolled 2x64 MLP crashed SwiftShader's compiler, REFERENCE §8).

const PRIMES = ["1u", "2654435761u", "805459861u", "3674653429u", "2097192037u", "1434869437u", "2165219737u"];

export function glslFloat(v) {
  const s = Number(v).toString();  // shortest round-trip text of the double, itself an exact float32
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

const ACTIVATIONS = {
  None: "v",
  ReLU: "max(v, 0.0)",
  LeakyReLU: "v > 0.0 ? v : 0.01 * v",
  Exponential: "exp(v)",
  Sine: "sin(v)",
  Sigmoid: "1.0 / (1.0 + exp(-v))",
  Squareplus: "(10.0 * v >= 0.0 ? 0.5 * (10.0 * v + sqrt(100.0 * v * v + 4.0)) : 2.0 / (sqrt(100.0 * v * v + 4.0) - 10.0 * v)) / 10.0",
  Softplus: "10.0 * v > 40.0 ? v : log(1.0 + exp(10.0 * v)) / 10.0",
  Tanh: "tanh(v)",
  SiLU: "v / (1.0 + exp(-v))",
};

export function fieldSource(name, field, rowsPerLayer, rowBase) {
  const enc = field.encoding, net = field.network;
  const d = field.n_input_dims, L = enc.n_levels, F = enc.n_features_per_level;
  const nIn = L * F, inW = net.input_width, out = field.n_output_dims;
  const widths = [inW, ...Array(net.n_hidden_layers).fill(net.n_neurons)];
  const rows = [...Array(net.n_hidden_layers).fill(net.n_neurons), out];  // last layer: only the used rows
  const maxW = Math.max(inW, net.n_neurons, 4);
  for (const a of [net.activation, net.output_activation]) if (!(a in ACTIVATIONS)) throw new Error(`activation ${a}`);
  const vec = d === 1 ? "float" : `vec${d}`;
  const comp = (v, i) => (d === 1 ? v : `${v}[${i}]`);
  const swz = ["r", "rg", null, "rgba"][F - 1];
  const list = (xs, f) => xs.map(f).join(", ");
  const modes = { hash: 0, dense: 1, zero: 2 };
  const padStart = net.pad_before ? inW - nIn : 0;
  const interp = enc.interpolation;
  const corners = interp === "Nearest" ? 1 : 1 << d;
  return `
uniform highp sampler2DArray ${name}_table;
uniform highp sampler2D ${name}_weights;
const float ${name}_SCALE[${L}] = float[${L}](${list(enc.levels, (l) => glslFloat(l.scale))});
const uint ${name}_RES[${L}] = uint[${L}](${list(enc.levels, (l) => `${l.resolution}u`)});
const uint ${name}_SIZE[${L}] = uint[${L}](${list(enc.levels, (l) => `${l.size}u`)});
const uint ${name}_OFFSET[${L}] = uint[${L}](${list(enc.levels, (l) => `${l.offset}u`)});
const int ${name}_MODE[${L}] = int[${L}](${list(enc.levels, (l) => modes[l.mode])});
const uint ${name}_PRIMES[7] = uint[7](${PRIMES.join(", ")});
const int ${name}_ROWS[${rows.length}] = int[${rows.length}](${rows.join(", ")});
const int ${name}_COLS[${rows.length}] = int[${rows.length}](${widths.join(", ")});
const int ${name}_BASE[${rows.length}] = int[${rows.length}](${rowBase.join(", ")});

${F === 1 ? "float" : `vec${F}`} ${name}_entry(uint i) {
  uint row = i / 2048u;
  ivec3 at = ivec3(int(i % 2048u), int(row % ${rowsPerLayer}u), int(row / ${rowsPerLayer}u));
  return texelFetch(${name}_table, at, 0).${swz};
}
float ${name}_hidden(float v) { return ${ACTIVATIONS[net.activation]}; }
float ${name}_output(float v) { return ${ACTIVATIONS[net.output_activation]}; }

void ${name}_eval(${vec} x, out float y[${out}]) {
  float a[${maxW}];
  float b[${maxW}];
  for (int k = 0; k < ${maxW}; k++) a[k] = ${glslFloat(net.input_pad_value)};
  for (int l = 0; l < ${L}; l++) {
    ${vec} pos = x * ${name}_SCALE[l] + 0.5;
    ${vec} cellf = floor(pos);
    ${vec} t = pos - cellf;
    ${interp === "Smoothstep" ? "t = t * t * (3.0 - 2.0 * t);" : ""}
    uint cell[${d}];
    for (int i = 0; i < ${d}; i++) cell[i] = uint(int(${comp("cellf", "i")}));
    ${F === 1 ? "float" : `vec${F}`} f = ${F === 1 ? "0.0" : `vec${F}(0.0)`};
    for (int c = 0; c < ${corners}; c++) {
      uint index = 0u;
      float w = 1.0;
      uint stride = 1u;
      for (int i = 0; i < ${d}; i++) {
        bool up = ((c >> i) & 1) == 1;
        uint ci = cell[i] + (up ? 1u : 0u);
        if (${name}_MODE[l] == 0) index ^= ci * ${name}_PRIMES[i];
        else if (${name}_MODE[l] == 1) index += ci * stride;
        stride *= ${name}_RES[l];
        w *= up ? ${comp("t", "i")} : 1.0 - ${comp("t", "i")};
      }
      if (${name}_MODE[l] == 2) index = 0u;
      f += ${interp === "Nearest" ? "" : "w * "}${name}_entry(${name}_OFFSET[l] + index % ${name}_SIZE[l]);
    }
    ${Array.from({ length: F }, (_, j) => `a[${padStart} + l * ${F} + ${j}] = ${F === 1 ? "f" : `f[${j}]`};`).join("\n    ")}
  }
  for (int layer = 0; layer < ${rows.length}; layer++) {
    bool last = layer == ${rows.length - 1};
    for (int o = 0; o < ${name}_ROWS[layer]; o++) {
      float acc = 0.0;
      int row = ${name}_BASE[layer] + o;
      for (int k = 0; k < ${name}_COLS[layer] / 4; k++) {
        vec4 w = texelFetch(${name}_weights, ivec2(k, row), 0);
        acc += dot(w, vec4(a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3]));
      }
      b[o] = last ? ${name}_output(acc) : ${name}_hidden(acc);
    }
    for (int o = 0; o < ${name}_ROWS[layer]; o++) a[o] = b[o];
  }
  for (int o = 0; o < ${out}; o++) y[o] = a[o];
}
`;
}
