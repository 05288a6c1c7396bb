// The SDF viewer: sphere tracing from an orbit camera, as ingp.sdf.render does it (march by 0.9 d, at least 2e-4,
// hit at |d| < 2e-4, bisection after stepping inside, at most 160 steps inside the unit cube), normals by central
// differences (h = 1e-3), shaded as the normal colour under a light over the viewer's shoulder; background white.
// Drag orbits (azimuth, elevation), the wheel moves the camera nearer or farther.
import { HEADER } from "./gl.js";

export function sdfShader(meta, fieldSource) {
  return `${HEADER}
uniform vec3 uEye, uRight, uUp, uBack;
uniform float uHalf;
uniform vec2 uSize;
out vec4 outColor;
${fieldSource}
float sdf(vec3 p) { float y[1]; field_eval(p, y); return y[0]; }
void main() {
  vec2 pixel = vec2(gl_FragCoord.x, uSize.y - gl_FragCoord.y);
  float ys = (1.0 - 2.0 * pixel.y / uSize.y) * uHalf;
  float xs = (2.0 * pixel.x / uSize.x - 1.0) * uHalf * uSize.x / uSize.y;
  vec3 dir = normalize(xs * uRight + ys * uUp - uBack);
  vec3 o = uEye;
  vec3 inv = 1.0 / mix(dir, vec3(1e-12), vec3(lessThan(abs(dir), vec3(1e-12))));
  vec3 t0 = -o * inv, t1 = (1.0 - o) * inv;
  vec3 tmin = min(t0, t1), tmax = max(t0, t1);
  float t = max(max(max(tmin.x, tmin.y), tmin.z), 0.0);
  float far = min(min(tmax.x, tmax.y), tmax.z);
  float tOut = t;
  bool hit = false, crossed = false;
  if (t < far) {
    for (int i = 0; i < 160; i++) {
      float d = sdf(o + t * dir);
      if (abs(d) < 2e-4) { hit = true; break; }
      if (d < 0.0) { crossed = true; break; }
      tOut = t;
      t = t + max(d * 0.9, 2e-4);
      if (t > far) break;
    }
  }
  if (crossed) {
    float lo = tOut, hi = t;
    for (int i = 0; i < 12; i++) {
      float mid = (lo + hi) / 2.0;
      if (sdf(o + mid * dir) > 0.0) lo = mid; else hi = mid;
    }
    t = (lo + hi) / 2.0;
    hit = true;
  }
  vec3 colour = vec3(1.0);
  if (hit) {
    vec3 p = o + t * dir;
    const float h = 1e-3;
    vec3 n = normalize(vec3(sdf(p + vec3(h, 0, 0)) - sdf(p - vec3(h, 0, 0)),
                            sdf(p + vec3(0, h, 0)) - sdf(p - vec3(0, h, 0)),
                            sdf(p + vec3(0, 0, h)) - sdf(p - vec3(0, 0, h))));
    vec3 light = normalize(-dir + vec3(0.3, 0.6, 0.0));
    float diffuse = max(dot(n, light), 0.0);
    colour = (0.5 + 0.5 * n) * (0.35 + 0.65 * diffuse);
  }
  outColor = vec4(clamp(colour, 0.0, 1.0), 1.0);
}`;
}

export function sdfView() {
  return { kind: "sdf", azimuth: 30, elevation: 20, distance: 1.8, fov: 40, aspect: 1 };
}

// The camera of ingp.sdf.render.orbit_rays, computed in float64 here.
export function orbitCamera(view) {
  const az = (view.azimuth * Math.PI) / 180, el = (view.elevation * Math.PI) / 180;
  const back = [Math.cos(el) * Math.sin(az), Math.sin(el), Math.cos(el) * Math.cos(az)];
  const eye = back.map((b) => 0.5 + view.distance * b);
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  let right = cross([0, 1, 0], back);
  const len = Math.hypot(...right);
  right = right.map((r) => r / len);
  const up = cross(back, right);
  return { eye, right, up, back, half: Math.tan((view.fov * Math.PI) / 360) };
}

// An orbit camera's uniforms, shared by the SDF and NeRF shaders.
export function setCameraUniforms(gl, program, cam, width, height) {
  for (const [name, v] of [["uEye", cam.eye], ["uRight", cam.right], ["uUp", cam.up], ["uBack", cam.back]]) {
    gl.uniform3f(gl.getUniformLocation(program, name), v[0], v[1], v[2]);
  }
  gl.uniform1f(gl.getUniformLocation(program, "uHalf"), cam.half);
  const shift = cam.shift || [0, 0];
  gl.uniform2f(gl.getUniformLocation(program, "uShift"), shift[0], shift[1]);  // NeRF only (null elsewhere: no-op)
  gl.uniform2f(gl.getUniformLocation(program, "uSize"), width, height);
}

export function setSdfUniforms(gl, program, view, width, height) {
  setCameraUniforms(gl, program, orbitCamera(view), width, height);
}

// Drag to orbit (azimuth, elevation), wheel to change the distance within [minDistance, maxDistance].
export function orbitControls(canvas, view, changed, minDistance, maxDistance) {
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { drag = null; changed(false); });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    view.azimuth -= (e.clientX - drag[0]) * 0.4;
    view.elevation = Math.min(89, Math.max(-89, view.elevation + (e.clientY - drag[1]) * 0.4));
    drag = [e.clientX, e.clientY];
    changed(true);
  });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    view.distance = Math.min(Math.max(view.distance * Math.exp(e.deltaY * 0.001), minDistance), maxDistance);
    changed(false);
  }, { passive: false });
}

export function sdfControls(canvas, view, changed) {
  orbitControls(canvas, view, changed, 0.2, 10);
}
