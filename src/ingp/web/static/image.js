// The image viewer: every pixel evaluates the field at its point of the view window (ingp.image.model.view_points):
//   x = center + ((pixel + 0.5) / size - 0.5) / zoom, clamped to [0, 1]; row 0 at the top.
// Drag pans, the wheel zooms about the cursor; any zoom is evaluated live at full detail.
import { HEADER } from "./gl.js";

export function imageShader(meta, fieldSource) {
  const c = meta.image.channels;
  const colour = c <= 2 ? "vec3(y[0])" : "vec3(y[0], y[1], y[2])";
  return `${HEADER}
uniform vec2 uCenter;
uniform float uZoom;
uniform vec2 uSize;
out vec4 outColor;
${fieldSource}
vec3 srgb(vec3 v) {
  v = clamp(v, 0.0, 1.0);
  return mix(1.055 * pow(v, vec3(1.0 / 2.4)) - 0.055, 12.92 * v, vec3(lessThanEqual(v, vec3(0.0031308))));
}
void main() {
  vec2 pixel = vec2(gl_FragCoord.x, uSize.y - gl_FragCoord.y);  // pixel centres, y down
  vec2 p = clamp(uCenter + (pixel / uSize - 0.5) / uZoom, 0.0, 1.0);
  float y[${c}];
  field_eval(p, y);
  vec3 rgb = ${colour};
  outColor = vec4(${meta.image.linear ? "srgb(rgb)" : "clamp(rgb, 0.0, 1.0)"}, 1.0);
}`;
}

export function imageView(meta) {
  return { kind: "image", center: [0.5, 0.5], zoom: 1, aspect: meta.image.width / meta.image.height };
}

export function setImageUniforms(gl, program, view, width, height) {
  gl.uniform2f(gl.getUniformLocation(program, "uCenter"), view.center[0], view.center[1]);
  gl.uniform1f(gl.getUniformLocation(program, "uZoom"), view.zoom);
  gl.uniform2f(gl.getUniformLocation(program, "uSize"), width, height);
}

export function imageControls(canvas, view, changed) {
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { drag = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const r = canvas.getBoundingClientRect();
    view.center[0] -= (e.clientX - drag[0]) / r.width / view.zoom;
    view.center[1] -= (e.clientY - drag[1]) / r.height / view.zoom;
    drag = [e.clientX, e.clientY];
    changed(true);
  });
  canvas.addEventListener("pointerup", () => changed(false));
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    const u = (e.clientX - r.left) / r.width - 0.5, v = (e.clientY - r.top) / r.height - 0.5;
    const factor = Math.exp(-e.deltaY * 0.002);
    // keep the point under the cursor fixed
    view.center[0] += u / view.zoom - u / (view.zoom * factor);
    view.center[1] += v / view.zoom - v / (view.zoom * factor);
    view.zoom = Math.min(Math.max(view.zoom * factor, 0.25), 1 << 20);
    changed(false);
  }, { passive: false });
}
