// WebGL2 plumbing: compiling a full-screen-triangle program, and binding a field's or a network's textures.
import { uploadTable, uploadWeights } from "./textures.js";
import { fieldSource, networkSource } from "./field_glsl.js";

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

function networkLayers(net, buffers) {
  return net.layers.map((n, i) => {
    const cols = i === 0 ? net.input_width : net.n_neurons;
    return { data: buffers[n], rows: buffers[n].length / cols, cols };
  });
}

export function bindTexture(gl, program, target, tex, uniform, unit) {
  gl.activeTexture(gl.TEXTURE0 + unit);
  gl.bindTexture(target, tex);
  gl.uniform1i(gl.getUniformLocation(program, uniform), unit);
}

// A plain network (no encoding): its weight texture and GLSL. bind(program, unit) uses one texture unit.
export function makeNetwork(gl, name, record, buffers) {
  const weights = uploadWeights(gl, networkLayers(record.network, buffers));
  return {
    source: networkSource(name, record, weights.rowBase),
    bind(program, unit) { bindTexture(gl, program, gl.TEXTURE_2D, weights.tex, `${name}_weights`, unit); },
  };
}

// One field: its textures and its GLSL. bind(program, unit) binds the two textures to units unit, unit + 1.
export function makeField(gl, name, field, buffers) {
  const enc = field.encoding, net = field.network;
  const table = uploadTable(gl, buffers[enc.table], enc.n_entries, enc.n_features_per_level);
  const weights = uploadWeights(gl, networkLayers(net, buffers));
  return {
    source: fieldSource(name, field, table.rowsPerLayer, weights.rowBase),
    bind(program, unit) {
      bindTexture(gl, program, gl.TEXTURE_2D_ARRAY, table.tex, `${name}_table`, unit);
      bindTexture(gl, program, gl.TEXTURE_2D, weights.tex, `${name}_weights`, unit + 1);
    },
  };
}
