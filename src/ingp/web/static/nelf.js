// The NeLF viewer: one field evaluation per pixel. The pixel's ray comes from the NeRF viewer's orbit camera
// (nerf.js); where it crosses the scene sphere gives the two-sphere coordinates of ingp.nelf.rays (entry and
// mirrored exit point, in the scene frame, through the octahedral map), the field gives the colour (its output
// activation is the sigmoid); rays that miss the sphere show the background.
import { HEADER } from "./gl.js";
import { glslFloat } from "./field_glsl.js";

export function nelfShader(meta, source) {
  const n = meta.nelf, f = glslFloat;
  const [c, fr] = [n.centre.map(f).join(", "), n.frame.flat().map(f).join(", ")];
  return `${HEADER}
uniform vec3 uEye, uRight, uUp, uBack;
uniform float uHalf;
uniform vec2 uSize;
out vec4 outColor;
${source}
const vec3 CENTRE = vec3(${c});
const float RADIUS = ${f(Math.fround(n.radius))};
const mat3 FRAME_T = mat3(${fr});  // column-major: its columns are the frame's rows, so v * FRAME_T = frame @ v

float sgn(float v) { return v >= 0.0 ? 1.0 : -1.0; }
vec2 octahedral(vec3 v) {
  vec3 q = v / (abs(v.x) + abs(v.y) + abs(v.z) + 1e-12);
  vec2 m = q.z >= 0.0 ? q.xy : vec2((1.0 - abs(q.y)) * sgn(q.x), (1.0 - abs(q.x)) * sgn(q.y));
  return m * 0.5 + 0.5;
}

void main() {
  vec2 pixel = vec2(gl_FragCoord.x, uSize.y - gl_FragCoord.y);
  float ys = (1.0 - 2.0 * pixel.y / uSize.y) * uHalf;
  float xs = (2.0 * pixel.x / uSize.x - 1.0) * uHalf * (uSize.x / uSize.y);
  vec3 d = normalize(xs * uRight + ys * uUp - uBack);
  vec3 p = uEye - CENTRE;
  float b = dot(p, d);
  float disc = b * b - (dot(p, p) - RADIUS * RADIUS);
  vec3 colour = vec3(${n.background.map(f).join(", ")});
  if (disc > 0.0) {
    float s = sqrt(disc);
    vec3 a = ((p + (-b - s) * d) / RADIUS) * FRAME_T;
    vec3 e = ((p + (-b + s) * d) / RADIUS) * FRAME_T;
    e.z = -e.z;
    float y[3];
    field_eval(clamp(vec4(octahedral(a), octahedral(e)), 0.0, 1.0), y);
    colour = vec3(y[0], y[1], y[2]);
  }
  outColor = vec4(clamp(colour, 0.0, 1.0), 1.0);
}`;
}
