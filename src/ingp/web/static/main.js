// The viewer page: loads the export next to it (model/), builds the kind's shader, draws on demand.
// While the view moves it draws at reduced resolution (half; a quarter for NeRF) and refines at full resolution
// once still. Frames are drawn in bands of rows (NeRF: 4096 pixels per band), a few per animation frame, so the page
// stays responsive and a new view abandons a slow frame; the HUD shows progress, then the frame's wall time.
// Live (a fit with --view; live/status.json answers): the model comes from live/<n>/ and is swapped for each newer
// snapshot, keeping the camera; live.js draws the status line, the curves and the ground truth.
// window.ingp (for tests and the console):
//   ready: Promise; errors: [string]; meta: model.json; view: the camera / window (kept across snapshots)
//   live: {status, shown: snapshot number, shownStep, reloads} when live
//   renderFixed(view, width, height) -> {pixels: number[] (RGBA, row 0 at the top), ms}
//   time(view, width, height, n) -> median milliseconds of n synchronised frames
import { loadModel } from "./model.js";
import { fetchStatus, firstSnapshot, livePanel } from "./live.js";
import { makeField, makeProgram } from "./gl.js";
import { imageShader, imageView, setImageUniforms, imageControls } from "./image.js";
import { sdfShader, sdfView, setSdfUniforms, sdfControls } from "./sdf.js";
import { nerfResources, nerfShader, nerfView, setNerfUniforms, nerfControls, nerfBandRows } from "./nerf.js";
import { nelfShader } from "./nelf.js";

// Per kind: shader source, initial view, uniforms, controls; optionally its textures + GLSL (resources; default:
// the one field "field"), the rows drawn per draw call (bandRows; default: all) and the resolution factor while
// the view moves (moving; default 1/2).
const KINDS = {
  image: { shader: imageShader, view: imageView, uniforms: setImageUniforms, controls: imageControls },
  sdf: { shader: sdfShader, view: sdfView, uniforms: setSdfUniforms, controls: sdfControls },
  nerf: { shader: nerfShader, view: nerfView, uniforms: setNerfUniforms, controls: nerfControls,
    resources: nerfResources, bandRows: nerfBandRows, moving: 0.25 },
  nelf: { shader: nelfShader, view: nerfView, uniforms: setNerfUniforms, controls: nerfControls },
};

function fieldResources(gl, meta, buffers) {
  const field = makeField(gl, "field", meta.fields.field, buffers);
  return { source: field.source, bind: (program) => field.bind(program, 0) };
}

const api = { errors: [], meta: null };
window.ingp = api;
const hud = document.getElementById("hud");
const canvas = document.getElementById("view");

function fail(message) {
  api.errors.push(message);
  hud.textContent = `error: ${message}`;
  hud.classList.add("error");
}

// CSS size of the canvas: the largest box of the view's aspect that fits below the bar.
function fitCanvas(aspect) {
  const above = document.getElementById("bar").offsetHeight + document.getElementById("live").offsetHeight;
  const availW = window.innerWidth, availH = window.innerHeight - above - 4;
  const width = Math.max(1, Math.min(availW, availH * aspect)), height = width / aspect;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  return { width, height };
}

async function start() {
  const status = await fetchStatus();
  const shown = status ? await firstSnapshot(status, (text) => { hud.textContent = text; }) : null;
  const { meta, buffers } = await loadModel(shown ? `live/${shown.snapshot}/` : "model/");
  api.meta = meta;
  const kind = KINDS[meta.kind];
  if (!kind) throw new Error(`this viewer shows image, sdf, nerf and nelf exports, not ${meta.kind}`);
  const gl = canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false });
  if (!gl) throw new Error("WebGL2 is not available");
  canvas.addEventListener("webglcontextlost", () => fail("WebGL context lost"));
  // A model on the GPU: its textures (recorded as they are made, so a replaced snapshot frees them) and program
  // (reused while the shader source is unchanged: snapshots of one run differ only in their arrays).
  const upload = (m, b, old) => {
    const textures = [], create = gl.createTexture;
    gl.createTexture = () => { const t = create.call(gl); textures.push(t); return t; };
    try {
      const resources = (kind.resources || fieldResources)(gl, m, b);
      const source = kind.shader(m, resources.source);
      const program = old && old.source === source ? old.program : makeProgram(gl, source);
      return { meta: m, resources, source, program, textures };
    } finally {
      gl.createTexture = create;
    }
  };
  let model = upload(meta, buffers, null);
  const view = kind.view(meta);
  api.view = view;
  // A frame is drawn in bands of rows from the top, each waited for: a long single draw can trip the browser's
  // GPU watchdog on SwiftShader, and the interactive loop yields to the page between bands.
  const begin = (v, width, height) => {
    canvas.width = width;
    canvas.height = height;
    gl.viewport(0, 0, width, height);
    gl.useProgram(model.program);
    model.resources.bind(model.program);
    kind.uniforms(gl, model.program, v, width, height);
    const rows = kind.bandRows ? kind.bandRows(width, height) : height;
    const bands = [];
    for (let top = height; top > 0; top -= rows) bands.push([Math.max(0, top - rows), Math.min(rows, top)]);
    return bands;
  };
  const sync = new Uint8Array(4);
  const drawBand = (width, [y, rows]) => {
    gl.enable(gl.SCISSOR_TEST);
    gl.scissor(0, y, width, rows);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.disable(gl.SCISSOR_TEST);
    gl.readPixels(0, y, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, sync);  // waits for the band
    const error = gl.getError();
    if (error !== gl.NO_ERROR) fail(`WebGL error 0x${error.toString(16)}`);
  };
  const draw = (v, width, height) => {
    for (const band of begin(v, width, height)) drawBand(width, band);
  };
  const timed = (v, width, height) => {
    const t0 = performance.now();
    draw(v, width, height);
    return performance.now() - t0;
  };

  let generation = 0;  // of interactive frames; test calls abandon an unfinished one (they share the canvas)
  api.renderFixed = (v, width, height) => {
    generation++;
    const ms = timed({ ...view, ...v }, width, height);
    hud.textContent = `${meta.kind} · ${width}×${height} · ${ms.toFixed(1)} ms · fixed view`;
    const pixels = new Uint8Array(width * height * 4);
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    const flipped = new Uint8Array(pixels.length);
    for (let y = 0; y < height; y++) flipped.set(pixels.subarray((height - 1 - y) * width * 4, (height - y) * width * 4), y * width * 4);
    return { pixels: Array.from(flipped), ms };
  };
  api.time = (v, width, height, n) => {
    generation++;
    const times = Array.from({ length: n }, () => timed({ ...view, ...v }, width, height)).sort((a, b) => a - b);
    return times[Math.floor(n / 2)];
  };

  // interactive drawing: bands until ~40 ms are used, then the next animation frame; a newer request
  // (generation) abandons an unfinished frame, so dragging never waits for a slow full-resolution frame.
  const scaleInput = document.getElementById("scale");
  let pending = null;
  const redraw = (moving) => {
    if (pending) cancelAnimationFrame(pending);
    const mine = ++generation;
    pending = requestAnimationFrame(() => {
      pending = null;
      const box = fitCanvas(view.aspect);
      const full = Number(scaleInput.value) * (window.devicePixelRatio || 1);
      const scale = moving ? full * (kind.moving || 0.5) : full;
      const width = Math.max(1, Math.round(box.width * scale)), height = Math.max(1, Math.round(box.height * scale));
      const label = `${meta.kind} · ${width}×${height}`;
      const t0 = performance.now();
      const bands = begin(view, width, height);
      let next = 0;
      const work = () => {
        if (mine !== generation) return;
        const slice = performance.now();
        do drawBand(width, bands[next++]); while (next < bands.length && performance.now() - slice < 40);
        if (next < bands.length) {
          hud.textContent = `${label} · drawing ${Math.round((100 * next) / bands.length)}%`;
          requestAnimationFrame(work);
          return;
        }
        const ms = performance.now() - t0;
        hud.textContent = `${label} · ${ms.toFixed(1)} ms (${(1000 / ms).toFixed(1)} fps)` +
          (moving ? ` · moving: ${kind.moving === 0.25 ? "quarter" : "half"} resolution` : "");
        if (moving) {
          clearTimeout(api.refine);
          api.refine = setTimeout(() => redraw(false), 150);
        }
      };
      work();
    });
  };
  kind.controls(canvas, view, redraw);
  scaleInput.addEventListener("change", () => redraw(false));
  window.addEventListener("resize", () => redraw(false));
  redraw(false);
  if (shown) {
    api.live = { status, shown: shown.snapshot, shownStep: meta.step, reloads: 0 };
    livePanel(api.live, view, canvas, async (n) => {  // a newer snapshot: swap the model, keep the view
      const next = await loadModel(`live/${n}/`);
      const old = model;
      model = upload(next.meta, next.buffers, old);
      old.textures.forEach((t) => gl.deleteTexture(t));
      if (old.program !== model.program) gl.deleteProgram(old.program);
      api.meta = next.meta;
      Object.assign(api.live, { shown: n, shownStep: next.meta.step, reloads: api.live.reloads + 1 });
      redraw(false);
    }, redraw);
  }
}

api.ready = start().catch((err) => fail(err.message || String(err)));
