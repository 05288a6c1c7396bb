// The ONNX page: the NeLF's model.onnx (ingp export onnx) run by onnxruntime-web (WebAssembly, one thread), served
// by `ingp view RUN --onnx` from an onnxruntime-web dist folder under ort/. Per frame: every pixel's ray from the NeRF
// viewer's orbit camera (nerf.js) -> one session.run on (W*H, 6) rays -> (W*H, 3) colours -> a 2-D canvas.
// window.ingp (for tests): ready, errors, renderFixed(view, w, h) -> {pixels (RGBA, row 0 at the top), ms},
// time(view, w, h, n) -> median ms (each frame: rays, inference, drawing).
import * as ort from "./ort/ort.wasm.min.mjs";
import { nerfCamera, nerfView, nerfControls } from "./nerf.js";

const api = { errors: [] };
window.ingp = api;
const hud = document.getElementById("hud");
const canvas = document.getElementById("view");

function rays(view, width, height) {
  const cam = nerfCamera(view);
  const out = new Float32Array(width * height * 6);
  const aspect = width / height;
  for (let y = 0; y < height; y++) {
    const ys = (1 - (2 * (y + 0.5)) / height) * cam.half;
    for (let x = 0; x < width; x++) {
      const xs = ((2 * (x + 0.5)) / width - 1) * cam.half * aspect;
      const d = [0, 1, 2].map((k) => xs * cam.right[k] + ys * cam.up[k] - cam.back[k]);
      const len = Math.hypot(d[0], d[1], d[2]);
      const i = (y * width + x) * 6;
      out.set([cam.eye[0], cam.eye[1], cam.eye[2], d[0] / len, d[1] / len, d[2] / len], i);
    }
  }
  return out;
}

async function start() {
  ort.env.wasm.numThreads = 1;  // threads need a cross-origin-isolated page
  ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
  const session = await ort.InferenceSession.create("model/model.onnx", { executionProviders: ["wasm"] });
  const ctx = canvas.getContext("2d");
  const view = nerfView();
  api.view = view;
  const frame = async (v, width, height) => {
    const t0 = performance.now();
    const x = new ort.Tensor("float32", rays(v, width, height), [width * height, 6]);
    const y = (await session.run({ x })).y.data;
    const image = ctx.createImageData(width, height);
    for (let i = 0; i < width * height; i++) {
      for (let k = 0; k < 3; k++) image.data[4 * i + k] = Math.round(Math.min(Math.max(y[3 * i + k], 0), 1) * 255);
      image.data[4 * i + 3] = 255;
    }
    canvas.width = width;
    canvas.height = height;
    ctx.putImageData(image, 0, 0);
    return { pixels: image.data, ms: performance.now() - t0 };
  };
  api.renderFixed = async (v, width, height) => {
    const r = await frame({ ...view, ...v }, width, height);
    return { pixels: Array.from(r.pixels), ms: r.ms };
  };
  api.time = async (v, width, height, n) => {
    const times = [];
    for (let i = 0; i < n; i++) times.push((await frame({ ...view, ...v }, width, height)).ms);
    return times.sort((a, b) => a - b)[Math.floor(n / 2)];
  };
  const size = document.getElementById("size");
  let busy = false;
  const redraw = async () => {
    if (busy) return;
    busy = true;
    const s = Number(size.value);
    const { ms } = await frame(view, s, s);
    hud.textContent = `nelf (onnxruntime-web) · ${s}×${s} · ${ms.toFixed(0)} ms`;
    busy = false;
  };
  nerfControls(canvas, view, () => redraw());
  size.addEventListener("change", redraw);
  await redraw();
}

api.ready = start().catch((err) => {
  api.errors.push(err.message || String(err));
  hud.textContent = `error: ${err.message || err}`;
});
