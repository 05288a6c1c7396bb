// WebGL2 plumbing: compiling a full-screen-triangle program, and binding a field's textures.
import { uploadTable, uploadWeights } from "./textures.js";
import { fieldSource } from "./field_glsl.js";

const VERTEX = `#version 300 es
void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}`;

export const HEADER = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
precision highp sampler2DArray;
`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    throw new Error(`shader compile error: ${gl.getShaderInfoLog(shader)}`);
  }
  return shader;
}

export function makeProgram(gl, fragmentSource) {
  const program = gl.createProgram();
  gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, fragmentSource));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(`link error: ${gl.getProgramInfoLog(program)}`);
  return program;
}

// One field: its textures and its GLSL. bind(program, unit) binds the two textures to units unit, unit + 1.
export function makeField(gl, name, field, buffers) {
  const enc = field.encoding, net = field.network;
  const table = uploadTable(gl, buffers[enc.table], enc.n_entries, enc.n_features_per_level);
  const layers = net.layers.map((n, i) => {
    const cols = i === 0 ? net.input_width : net.n_neurons;
    return { data: buffers[n], rows: buffers[n].length / cols, cols };
  });
  const weights = uploadWeights(gl, layers);
  return {
    source: fieldSource(name, field, table.rowsPerLayer, weights.rowBase),
    bind(program, unit) {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, table.tex);
      gl.uniform1i(gl.getUniformLocation(program, `${name}_table`), unit);
      gl.activeTexture(gl.TEXTURE0 + unit + 1);
      gl.bindTexture(gl.TEXTURE_2D, weights.tex);
      gl.uniform1i(gl.getUniformLocation(program, `${name}_weights`), unit + 1);
    },
  };
}
