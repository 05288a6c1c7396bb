// Live training (a fit with --view): live/status.json is polled once a second; a newer snapshot number calls
// reload(n) (main.js swaps the model, keeping the camera); the status line shows step, training seconds, loss and
// the last quality figure; a small canvas plots the loss (log scale, left axis) and the quality (right axis)
// against the step; image runs get a ground-truth toggle drawing live/target.png through the same view window;
// NeRF runs a training-view menu (live/views.json): picking one puts the camera at that view (view.pose) and the
// toggle shows its photo over the canvas; orbiting (nerf.js dispatches "orbit") goes back to the orbit camera.
// No third-party code: a 2-D canvas and a few lines of layout.

const POLL_MS = 1000;

export async function fetchStatus() {
  try {
    const response = await fetch("live/status.json", { cache: "no-store" });
    if (response.status !== 200) return null;  // 204: not a live run
    const status = await response.json();
    return status.format === "ingp-live" ? status : null;
  } catch {
    return null;
  }
}

// The status once its first snapshot exists (a fit writes it after its first step).
export async function firstSnapshot(status, say) {
  while (status.snapshot === null || status.snapshot === undefined) {
    say("waiting for the first snapshot…");
    await new Promise((r) => setTimeout(r, 250));
    status = (await fetchStatus()) || status;
  }
  return status;
}

function fmt(x, digits = 4) {
  return x === null || x === undefined ? "–" : Number(x).toPrecision(digits);
}

export function statusText(s) {
  const q = s.quality && s.quality.value.length
    ? ` · ${s.quality.name} ${s.quality.value.at(-1).toFixed(s.quality.unit ? 2 : 4)}${s.quality.unit ? " " + s.quality.unit : ""}` +
      ` (step ${s.quality.step.at(-1)}, ${s.quality.points})`
    : "";
  const state = s.running ? "training" : "finished";
  return `${state} · step ${s.step} · ${s.seconds.toFixed(1)} s · loss ${fmt(s.loss)}${q} · showing step ${s.snapshot_step}`;
}

// Loss (log10, blue, left) and quality (orange, right) against the step, each scaled to its own range.
export function drawCurves(plot, s) {
  const ctx = plot.getContext("2d"), w = plot.width, h = plot.height, pad = 4;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, w, h);
  const steps = s.curve.step;
  const lastStep = Math.max(1, steps.length ? steps.at(-1) : 1, s.step);
  const series = (xs, ys, colour, label, side) => {
    const pts = xs.map((x, i) => [x, ys[i]]).filter((p) => p[1] !== null && Number.isFinite(p[1]));
    if (!pts.length) return;
    let lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
    if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach(([x, y], i) => {
      const px = pad + (x / lastStep) * (w - 2 * pad), py = h - pad - ((y - lo) / (hi - lo)) * (h - 2 * pad);
      if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py);
    });
    ctx.stroke();
    ctx.fillStyle = colour;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = side;
    const x = side === "left" ? pad + 2 : w - pad - 2;
    ctx.fillText(`${label} ${label === "loss" ? fmt(10 ** hi, 3) : fmt(hi, 4)}`, x, 12);
    ctx.fillText(`${label === "loss" ? fmt(10 ** lo, 3) : fmt(lo, 4)}`, x, h - 6);
  };
  series(steps, s.curve.loss.map((l) => (l > 0 ? Math.log10(l) : null)), "#6af", "loss", "left");
  if (s.quality) series(s.quality.step, s.quality.value, "#fa6", s.quality.name, "right");
}

// The training image through the image viewer's window (image.js): centre +- 0.5 / zoom of the unit square.
function drawTruth(truth, img, view, canvas) {
  const box = canvas.getBoundingClientRect();
  truth.width = Math.round(box.width);
  truth.height = Math.round(box.height);
  truth.style.width = `${box.width}px`;
  truth.style.height = `${box.height}px`;
  const ctx = truth.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#222";
  ctx.fillRect(0, 0, truth.width, truth.height);
  const W = img.naturalWidth, H = img.naturalHeight, z = view.zoom;
  ctx.drawImage(img, (view.center[0] - 0.5 / z) * W, (view.center[1] - 0.5 / z) * H, W / z, H / z,
    0, 0, truth.width, truth.height);
}

// A training view's photo over the whole canvas (the camera is that view's, the canvas has its aspect).
function drawPhoto(truth, img, view, canvas) {
  drawTruth(truth, img, { zoom: 1, center: [0.5, 0.5] }, canvas);
}

// The NeRF training-view menu: entries of views.json; choosing one sets view.pose / view.aspect and redraws.
async function viewMenu(view, canvas, toggle, redraw) {
  const response = await fetch("live/views.json", { cache: "no-store" });
  const { views } = await response.json();
  const label = document.createElement("label");
  label.textContent = "training view ";
  const select = document.createElement("select");
  select.id = "training-view";
  select.add(new Option("orbit", ""));
  views.forEach((v, i) => select.add(new Option(v.name, String(i))));
  label.append(select);
  toggle.parentElement.before(label);
  const photo = new Image();
  select.addEventListener("change", () => {
    const v = views[Number(select.value)];
    if (select.value === "") { view.pose = null; view.aspect = 1; toggle.checked = false; }
    else {
      view.pose = { ...v.camera, orbit: [view.azimuth, view.elevation, view.distance] };
      view.aspect = v.width / v.height;
      photo.src = `live/${v.file}`;
    }
    toggle.parentElement.hidden = select.value === "";
    toggle.dispatchEvent(new Event("change"));
    redraw(false);
  });
  canvas.addEventListener("orbit", () => { select.value = ""; toggle.checked = false; toggle.parentElement.hidden = true; });
  return photo;
}

// Wires the panel (#live in index.html) and starts polling. state: main.js's api.live (status, shown ...).
export async function livePanel(state, view, canvas, reload, redraw) {
  const panel = document.getElementById("live"), line = document.getElementById("status");
  const plot = document.getElementById("plot"), toggle = document.getElementById("truth-toggle");
  const truth = document.getElementById("truth");
  panel.hidden = false;
  let img = null, looping = false, paint = drawTruth;
  if (state.status.ground_truth && view.kind === "image") {
    toggle.parentElement.hidden = false;
    img = new Image();
    img.src = `live/${state.status.ground_truth}`;
  } else if (state.status.ground_truth && view.kind === "nerf") {
    img = await viewMenu(view, canvas, toggle, redraw);
    paint = drawPhoto;
  }
  if (img) {
    const loop = () => {
      if (!toggle.checked) { looping = false; truth.hidden = true; return; }
      truth.hidden = false;
      if (img.complete && img.naturalWidth) paint(truth, img, view, canvas);
      requestAnimationFrame(loop);
    };
    toggle.addEventListener("change", () => { if (toggle.checked && !looping) { looping = true; loop(); } });
  }
  const show = (s) => {
    state.status = s;
    line.textContent = statusText(s);
    drawCurves(plot, s);
  };
  show(state.status);
  let loading = false;
  const poll = async () => {
    const s = await fetchStatus();
    if (!s) {
      line.textContent = `trainer stopped · last seen step ${state.status.step}`;
    } else {
      show(s);
      if (s.snapshot !== state.shown && !loading) {
        loading = true;
        try {
          await reload(s.snapshot);
        } catch (err) {
          // usually the snapshot was replaced while it loaded: the next poll brings the newer one
          state.lastError = String(err.message || err);
        } finally {
          loading = false;
        }
      }
    }
    setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
}
