// The NeRF viewer: per pixel, march the ray through the cascaded occupancy bitfield with the training marcher's
// steps (ingp.nerf.march: t_{k+1} = t_k + clamp(t_k cone, min_step, max_step) from max(t_near, near), a sample at
// the middle of each step whose cell is set, at most max_steps steps), jump over empty cells (as the numba marcher:
// to the cell's exit minus 1e-4 cells, so no sample that could be in another cell is skipped), composite
// alpha = 1 - exp(-sigma dt) front to back and stop once the transmittance is below min_transmittance; the rest
// of the light comes from the background (white). The colour network runs only for samples whose weight is
// above 1e-6 (their sum bounds the error; sigma still counts). The density grid's input is the box-normalised
// point, or with a contraction (mip-NeRF 360, nerf/contraction.py) (contract(2 x - 1) + 2) / 4; marching stays in
// scene coordinates either way, as ingp's renderer does. The colour network's last inputs are the export's
// appearance code (the run's render code), the same for every sample.
// Per pixel the work is bounded by max_steps (1024) loop iterations; per draw call by drawing the frame in bands
// of rows (bandRows) so that no single SwiftShader draw runs for seconds.
// Drag orbits (azimuth, elevation) about the scene centre, the wheel moves the camera; "up" picks the scene's up axis.
import { HEADER, makeField, makeNetwork, bindTexture } from "./gl.js";
import { glslFloat } from "./field_glsl.js";
import { shSource } from "./sh_glsl.js";
import { uploadBytes, TABLE_WIDTH } from "./textures.js";
import { orbitControls, setCameraUniforms } from "./sdf.js";

export const COLOR_MIN_WEIGHT = 1e-6;
const BAND_PIXELS = 4096;  // pixels per draw call

export function nerfResources(gl, meta, buffers) {
  const density = makeField(gl, "density", meta.fields.density, buffers);
  const color = makeNetwork(gl, "color", meta.fields.color, buffers);
  const bits = uploadBytes(gl, buffers[meta.nerf.bitfield]);
  return {
    source: `${density.source}\n${color.source}`,
    bind(program) {
      density.bind(program, 0);
      color.bind(program, 2);
      bindTexture(gl, program, gl.TEXTURE_2D, bits.tex, "occ_bits", 3);
    },
  };
}

export function nerfShader(meta, source) {
  const n = meta.nerf, K = n.cascades, R = n.resolution;
  const f = glslFloat;
  const halves = Array.from({ length: K }, (_, c) => f(2 ** (c - 1)));
  const [lo, hi] = n.aabb;
  const nGeo = meta.fields.density.n_output_dims, nSh = n.sh_degree * n.sh_degree;
  const nIn = meta.fields.color.n_input_dims;
  const code = n.appearance_code || [], nCode = code.length;
  if (nIn !== nGeo + nSh + nCode) {
    throw new Error(`colour network takes ${nIn} inputs, not ${nGeo} + ${nSh} + ${nCode}`);
  }
  const norm = n.contraction || null;
  if (norm !== null && norm !== "linf" && norm !== "l2") throw new Error(`contraction ${norm}`);
  // u = encode(x), NerfModel._features
  const encode = norm === null ? "return clamp((x - LO) * INV_EXTENT, 0.0, 1.0);" : `vec3 y = 2.0 * x - 1.0;
  float r = ${norm === "linf" ? "max(max(abs(y.x), abs(y.y)), abs(y.z))" : "sqrt(dot(y, y))"};
  vec3 c = r <= 1.0 ? y : (2.0 - 1.0 / r) * y / r;  // contraction.contract
  return (c + 2.0) * 0.25;`;
  const setCode = nCode === 0 ? "" : `const float CODE[${nCode}] = float[${nCode}](${code.map(f).join(", ")});
    for (int i = 0; i < ${nCode}; i++) x_in[${nGeo + nSh} + i] = CODE[i];  // the appearance code`;
  const bg = n.background.map(f).join(", ");
  return `${HEADER}precision highp usampler2D;
uniform vec3 uEye, uRight, uUp, uBack;
uniform float uHalf;
uniform vec2 uSize, uShift;  // uShift: a training camera's principal point (camera.py pose_camera); orbits: 0
uniform highp usampler2D occ_bits;
out vec4 outColor;
${source}
${shSource(n.sh_degree)}
const float LO = ${f(lo)}, INV_EXTENT = ${f(1 / (hi - lo))};
const int K = ${K}, R = ${R}, MAX_STEPS = ${n.max_steps};
const float DT_MIN = ${f(Math.fround(n.min_step))}, DT_MAX = ${f(Math.fround(n.max_step))};
const float CONE = ${f(Math.fround(n.cone_angle))}, NEAR = ${f(Math.fround(n.near))};
const float MIN_T = ${f(Math.fround(n.min_transmittance))};
const float HALF[${K}] = float[${K}](${halves.join(", ")});  // cascade c covers 0.5 +- 2^(c - 1)

// Is cell ijk of cascade c set? Cell n = c R^3 + (i R + j) R + l is bit n % 8 of byte n / 8.
bool cellSet(int c, ivec3 ijk) {
  uint cell = uint(c) * uint(R * R * R) + uint((ijk.x * R + ijk.y) * R + ijk.z);
  uint b = cell >> 3u;
  uint byte = texelFetch(occ_bits, ivec2(int(b % ${TABLE_WIDTH}u), int(b / ${TABLE_WIDTH}u)), 0).r;
  return ((byte >> (cell & 7u)) & 1u) == 1u;
}

// Steps of march.step_distances: linear (min step), geometric (factor 1 + cone), linear (max step) phases.
struct Steps { float t0, g, na, ta, nb, tb; };
Steps steps(float t0) {
  Steps s = Steps(t0, 0.0, 0.0, 0.0, 0.0, 0.0);
  if (CONE <= 0.0) return s;
  s.g = log(1.0 + CONE);
  s.na = ceil(max((DT_MIN / CONE - t0) / DT_MIN, 0.0));
  s.ta = t0 + s.na * DT_MIN;
  s.nb = ceil(max(log((DT_MAX / CONE) / max(s.ta, 1e-9)) / s.g, 0.0));
  s.tb = s.ta * exp(s.nb * s.g);
  return s;
}
float stepT(Steps s, int k) {
  float kf = float(k);
  if (CONE <= 0.0 || kf <= s.na) return s.t0 + kf * DT_MIN;
  if (kf - s.na <= s.nb) return s.ta * exp((kf - s.na) * s.g);
  return s.tb + (kf - s.na - s.nb) * DT_MAX;
}
float stepDt(float t) { return CONE > 0.0 ? clamp(t * CONE, DT_MIN, DT_MAX) : DT_MIN; }

vec3 encodePosition(vec3 x) {
  ${encode}
}

float axisExit(float p, float v, float cellLo, float cell) {
  if (v > 1e-9) return (cellLo + cell - p) / v;
  if (v < -1e-9) return (cellLo - p) / v;
  return 1e30;
}

void main() {
  vec2 pixel = vec2(gl_FragCoord.x, uSize.y - gl_FragCoord.y);
  float ys = (1.0 - 2.0 * pixel.y / uSize.y + uShift.y) * uHalf;
  float xs = (2.0 * pixel.x / uSize.x - 1.0 + uShift.x) * uHalf * (uSize.x / uSize.y);
  vec3 d = normalize(xs * uRight + ys * uUp - uBack);
  vec3 o = uEye;
  vec3 inv = 1.0 / mix(d, vec3(1e-9), lessThan(abs(d), vec3(1e-9)));  // march.box_intersect
  vec3 ta = (LO - o) * inv, tb = (${f(hi)} - o) * inv;
  vec3 tmin = min(ta, tb), tmax = max(ta, tb);
  float tNear = max(max(max(tmin.x, tmin.y), tmin.z), NEAR);
  float tFar = min(min(tmax.x, tmax.y), tmax.z);
  vec3 colour = vec3(0.0);
  float T = 1.0;
  if (tFar > tNear) {
    float x_in[${nIn}];
    float sh[${nSh}];
    sh_eval((d + 1.0) * 0.5, sh);
    for (int i = 0; i < ${nSh}; i++) x_in[${nGeo} + i] = sh[i];
    ${setCode}
    Steps s = steps(tNear);
    float slack = 1e-4 / max(max(abs(d.x), abs(d.y)), abs(d.z));
    int k = 0;
    for (int it = 0; it < MAX_STEPS; it++) {  // each iteration advances k by at least one
      if (k >= MAX_STEPS) break;
      float t = stepT(s, k);
      float dt = stepDt(t);
      float tm = t + 0.5 * dt;
      if (!(tm < tFar)) break;
      vec3 x = o + tm * d;
      vec3 r3 = abs(x - 0.5);
      float r = max(max(r3.x, r3.y), r3.z);
      int c = 0;  // the finest cascade holding x, by comparisons (OccupancyGrid.cell_index)
      for (int i = 0; i < K - 1; i++) c += r >= HALF[i] ? 1 : 0;
      float cellLo = 0.5 - HALF[c];
      vec3 cellf = floor((x - cellLo) * (0.5 / HALF[c]) * float(R));  // the cascade's size is a power of two
      if (any(lessThan(cellf, vec3(0.0))) || any(greaterThanEqual(cellf, vec3(float(R))))) { k++; continue; }
      if (cellSet(c, ivec3(cellf))) {
        float h[${nGeo}];
        density_eval(encodePosition(x), h);
        float tau = exp(h[0]) * dt;
        float alpha = 1.0 - exp(-tau);
        float w = T * alpha;
        if (w > ${f(COLOR_MIN_WEIGHT)}) {
          for (int i = 0; i < ${nGeo}; i++) x_in[i] = h[i];
          float rgb[3];
          color_eval(x_in, rgb);
          colour += w / (1.0 + exp(-vec3(rgb[0], rgb[1], rgb[2])));
        }
        T *= 1.0 - alpha;
        k++;
        if (T < MIN_T) break;  // later samples would all be in front of less than MIN_T of the light
        continue;
      }
      // an empty cell: go to the first step whose middle is past the cell's exit (less a margin)
      float cell = 2.0 * HALF[c] / float(R);
      vec3 lo3 = cellLo + cellf * cell;
      float exitT = min(min(axisExit(o.x, d.x, lo3.x, cell), axisExit(o.y, d.y, lo3.y, cell)),
                        axisExit(o.z, d.z, lo3.z, cell)) - slack * cell;
      if (CONE <= 0.0) {
        k = max(k + 1, int(ceil((exitT - tNear) / DT_MIN - 0.5)));
      } else {
        k++;
        for (int j = 0; j < MAX_STEPS; j++) {
          if (k >= MAX_STEPS) break;
          float tk = stepT(s, k);
          if (tk + 0.5 * stepDt(tk) >= exitT) break;
          k++;
        }
      }
    }
  }
  outColor = vec4(clamp(colour + T * vec3(${bg}), 0.0, 1.0), 1.0);
}`;
}

export function nerfView() {
  return { kind: "nerf", azimuth: 30, elevation: 25, distance: 1.3, fov: 40, up: "z", aspect: 1 };
}

// ingp.web.camera.orbit_camera, in float64; a training view's camera (view.pose, camera.py pose_camera) as it is.
export function nerfCamera(view) {
  if (view.pose) return view.pose;
  const az = (view.azimuth * Math.PI) / 180, el = (view.elevation * Math.PI) / 180;
  const zUp = view.up === "z";
  const worldUp = zUp ? [0, 0, 1] : [0, 1, 0];
  const back = zUp ? [Math.cos(el) * Math.sin(az), -Math.cos(el) * Math.cos(az), Math.sin(el)]
    : [Math.cos(el) * Math.sin(az), Math.sin(el), Math.cos(el) * Math.cos(az)];
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  let right = cross(worldUp, back);
  const len = Math.hypot(...right);
  right = right.map((v) => v / len);
  return { eye: back.map((b) => 0.5 + view.distance * b), right, up: cross(back, right), back,
    half: Math.tan((view.fov * Math.PI) / 360) };
}

export function setNerfUniforms(gl, program, view, width, height) {
  setCameraUniforms(gl, program, nerfCamera(view), width, height);
}

export function nerfBandRows(width) {
  return Math.max(1, Math.floor(BAND_PIXELS / width));
}

export function nerfControls(canvas, view, changed) {
  // Moving the camera leaves a training view (view.pose, set by live.js with the orbit it was chosen at) for the
  // orbit camera, and tells live.js.
  const orbit = (moving) => {
    const at = [view.azimuth, view.elevation, view.distance];
    if (view.pose && view.pose.orbit && view.pose.orbit.some((x, i) => x !== at[i])) {
      view.pose = null;
      view.aspect = 1;
      canvas.dispatchEvent(new Event("orbit"));
    }
    changed(moving);
  };
  orbitControls(canvas, view, orbit, 0.1, 20);
  const label = document.createElement("label");
  label.textContent = "up ";
  const select = document.createElement("select");
  select.id = "up";
  for (const axis of ["z", "y"]) select.add(new Option(`+${axis}`, axis, false, axis === view.up));
  select.addEventListener("change", () => { view.up = select.value; changed(false); });
  label.append(select);
  document.getElementById("bar").append(label);
}
