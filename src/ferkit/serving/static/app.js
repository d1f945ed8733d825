// ferkit page: state, messages, photos, video jobs, tabs, start-up; after tags.js and webcam.js. No external assets.
"use strict";

const $ = (id) => document.getElementById(id);
// tags: per canvas id, the face tags last drawn there, in CSS pixels of that canvas ({face, x, y, w, h, font}).
const state = { photo: null, hover: -1, job: null, uploads: 0, frames: null, labels: [],
  original: null, result: null, tags: {} };
window.ferkit = state;  // for the browser test and for curious users
state.live = cam;  // the webcam's state (webcam.js)

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body.error) return `${body.error.message} (${response.status} ${body.error.code})`;
  } catch (_) { /* not JSON */ }
  return `the server answered ${response.status}`;
}

// ---- photos --------------------------------------------------------------------------------
async function analysePhoto(file) {
  say(`Analysing ${file.name}…`);
  const response = await fetch("/v1/analyze", { method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" } });
  if (!response.ok) { say(await errorText(response), true); return; }
  const result = await response.json();
  const image = await createImageBitmap(file, { imageOrientation: "from-image" });
  showPanel("photo-panel");  // before measuring: a hidden panel has no width
  state.photo = { result, image, scale: 1, width: 0, height: 0 };
  state.hover = result.faces.length ? 0 : -1;
  renderPhoto();
  $("face-list").replaceChildren(...result.faces.map(faceItem));
  const n = result.faces.length;
  say(`${n} face${n === 1 ? "" : "s"} found in ${file.name} (${result.elapsed_ms.toFixed(0)} ms on the server).`);
  $("photo-canvas").dataset.faces = String(n);
}

function faceItem(face, i) {
  const li = document.createElement("li");
  li.textContent = `${face.label} ${Math.round(face.confidence * 100)}% at (${face.box.join(", ")})`;
  for (const e of ["mouseenter", "click"]) li.addEventListener(e, () => highlight(i));
  return li;
}

function highlight(i) {
  if (i >= 0 && i !== state.hover) { state.hover = i; renderPhoto(); }
}

function layoutPhoto() {  // the photo's CSS size: the stage's width, at most its own size and most of the screen's height
  const photo = state.photo, canvas = $("photo-canvas"), { width, height } = photo.result;
  const room = canvas.parentElement.clientWidth || width;
  photo.scale = Math.min(1, room / width, Math.min(800, 0.85 * window.innerHeight) / height);
  photo.width = Math.round(width * photo.scale);
  photo.height = Math.round(height * photo.scale);
  canvas.style.width = `${photo.width}px`;
  canvas.style.height = `${photo.height}px`;
}

function renderPhoto() {
  const { result, image } = state.photo;
  layoutPhoto();
  const { scale, width, height } = state.photo;
  const ctx = fitCanvas($("photo-canvas"), width, height);
  ctx.drawImage(image, 0, 0, width, height);
  state.tags["photo-canvas"] = drawFaces(ctx, result.faces, scale, { w: width, h: height }, state.hover);
  drawBars($("bars"), "bars-title", result.faces[state.hover]);
}

function faceAt(event) {  // the index of the face under the pointer, or -1
  const rect = event.currentTarget.getBoundingClientRect(), photo = state.photo;
  const k = (rect.width / photo.width) * photo.scale;  // image pixels to displayed pixels
  const x = (event.clientX - rect.left) / k, y = (event.clientY - rect.top) / k;
  return photo.result.faces.findIndex(({ box: [bx, by, bw, bh] }) => x >= bx && x <= bx + bw && y >= by && y <= by + bh);
}

for (const e of ["pointermove", "pointerdown"]) {
  $("photo-canvas").addEventListener(e, (event) => { if (state.photo) highlight(faceAt(event)); });
}

// ---- videos --------------------------------------------------------------------------------
function resetJob(file) {  // nothing of the previous job stays on screen while the next one uploads
  state.job = null;
  state.frames = null;
  state.labels = [];
  state.result = null;
  $("job-progress").removeAttribute("value");  // indeterminate until the job reports progress
  $("job-status").textContent = `uploading ${file.name}…`;
  $("downloads").replaceChildren();
  $("video-source").hidden = true;
  $("show-original").checked = false;
  if (state.original) URL.revokeObjectURL(state.original);
  state.original = URL.createObjectURL(file);
  setPlayer(state.original);
  drawTimeline();
}

async function startJob(file) {
  const upload = ++state.uploads;
  say(`Uploading ${file.name}…`);
  showPanel("video-panel");
  resetJob(file);
  const response = await fetch("/v1/jobs", { method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" } });
  if (upload !== state.uploads) return;  // a newer upload replaced this one
  if (!response.ok) { showFailure(await errorText(response)); return; }
  const job = await response.json();
  state.job = job.id;
  say(`Analysing ${file.name} (job ${job.id.slice(0, 8)})…`);
  poll(job.id);
}

function poll(id) {
  pollJob(id).catch((err) => { if (state.job === id) showFailure(`Failed: ${err.message}`); });
}

function showFailure(text) {
  say(text, true);
  $("job-status").textContent = "failed";
  $("job-progress").value = 0;
}

async function pollJob(id) {
  if (state.job !== id) return;  // another upload replaced this one
  const response = await fetch(`/v1/jobs/${id}`);
  const job = response.ok ? await response.json() : null;
  if (state.job !== id) return;
  if (!job) { showFailure(await errorText(response)); return; }
  showProgress(job);
  if (job.state === "queued" || job.state === "running") { setTimeout(() => poll(id), 400); return; }
  if (job.state !== "done") { showFailure(`The job ${job.state}: ${job.error}`); return; }
  const doc = await (await fetch(job.results["frames.json"])).json();
  if (state.job === id) showResults(job, doc);
}

function showProgress(job) {
  $("job-progress").value = job.progress;
  const total = job.frames_total ? ` of ${job.frames_total}` : "";
  $("job-status").textContent = `${job.state}: frame ${job.frames_done}${total} (${Math.round(job.progress * 100)}%)`;
}

function showResults(job, doc) {
  state.frames = doc.frames;
  state.labels = doc.labels;
  state.result = new URL(job.results["annotated.mp4"], location.href).href;
  $("video-source").hidden = false;
  setPlayer(state.result);
  $("downloads").replaceChildren(...Object.entries(job.results).map(([name, url]) => {
    const a = document.createElement("a");
    a.href = url; a.textContent = `download ${name}`; a.download = "";
    return a;
  }));
  const withFaces = doc.frames.filter((f) => f.faces.length).length;
  say(`Done: ${doc.video.frames} frames, ${doc.frames.length} analysed, faces in ${withFaces}.`);
}

function setPlayer(url) {  // keeps the playing position when switching between the result and the original
  const player = $("video-player"), at = player.currentTime;
  if (player.src !== url) player.src = url;
  if (at && state.frames) player.currentTime = at;
  drawVideoOverlay();
}

function mainFace(faces) {  // the largest face: the one a timeline should follow
  let best = null;
  for (const f of faces) if (!best || f.box[2] * f.box[3] > best.box[2] * best.box[3]) best = f;
  return best;
}

function drawTimeline() {
  const fit = fitToDisplay($("timeline")), frames = state.frames;
  if (!fit || !frames || !frames.length) return;
  const { ctx, area } = fit;
  const pad = { l: 40, r: 90, t: 10, b: 24 }, w = area.w - pad.l - pad.r, h = area.h - pad.t - pad.b;
  const tMax = Math.max(frames[frames.length - 1].time_s, 1e-6);
  const X = (t) => pad.l + (t / tMax) * w, Y = (p) => pad.t + (1 - p) * h;
  ctx.strokeStyle = "#d6dae0"; ctx.fillStyle = "#69707a"; ctx.font = "11px system-ui, sans-serif";
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    ctx.beginPath(); ctx.moveTo(pad.l, Y(p)); ctx.lineTo(pad.l + w, Y(p)); ctx.stroke();
    ctx.fillText(`${p * 100}%`, 4, Y(p) + 4);
  }
  ctx.fillText("0 s", pad.l, area.h - 6);
  ctx.fillText(`${tMax.toFixed(1)} s`, pad.l + w - 30, area.h - 6);
  state.labels.forEach((label, k) => drawScoreLine(ctx, frames, label, X, Y, [pad.l + w + 8, pad.t + 12 + k * 15]));
  const now = $("video-player").currentTime;
  if (now > 0) {
    ctx.strokeStyle = "#1d2126"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(X(now), pad.t); ctx.lineTo(X(now), pad.t + h); ctx.stroke();
  }
}

function drawScoreLine(ctx, frames, label, X, Y, [legendX, legendY]) {
  ctx.strokeStyle = colour(label); ctx.lineWidth = 2; ctx.beginPath();
  let drawing = false;
  for (const f of frames) {
    const face = mainFace(f.faces);
    if (!face) { drawing = false; continue; }  // a gap where no face was found
    const x = X(f.time_s), y = Y(face.scores[label] ?? 0);
    if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    drawing = true;
  }
  ctx.stroke();
  ctx.fillStyle = colour(label);
  ctx.fillText(label, legendX, legendY);
}

function frameAt(time) {  // the last analysed frame at or before `time`
  const frames = state.frames;
  let lo = 0, hi = frames.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (frames[mid].time_s <= time + 1e-3) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found >= 0 ? frames[found] : null;
}

function drawVideoOverlay() {  // the page's own tags, over the original (the result has them drawn in)
  const player = $("video-player"), fit = fitToDisplay($("video-overlay"));
  drawTimeline();
  if (!fit) return;
  const frame = state.frames && player.src === state.original && player.videoWidth && frameAt(player.currentTime);
  const faces = frame ? frame.faces : [];
  state.tags["video-overlay"] = drawFaces(fit.ctx, faces, fit.area.w / player.videoWidth, fit.area);
}

["timeupdate", "seeked", "loadeddata"].forEach((e) => $("video-player").addEventListener(e, drawVideoOverlay));
$("video-player").addEventListener("error", () => {
  if ($("video-player").src === state.result) say("This browser cannot play the annotated video; download it below.", true);
});
$("show-original").addEventListener("change", (e) => setPlayer(e.target.checked ? state.original : state.result));

// ---- wiring --------------------------------------------------------------------------------
function showPanel(id) {
  for (const p of ["photo-panel", "video-panel"]) $(p).hidden = p !== id;
}

function handleFile(file) {
  if (!file) return;
  state.job = null;  // a photo, too, ends the polling of an earlier video job
  const isVideo = file.type.startsWith("video/") || /\.(mp4|m4v|mov|webm|mkv|avi)$/i.test(file.name);
  (isVideo ? startJob(file) : analysePhoto(file)).catch((err) => say(`Failed: ${err.message}`, true));
}

function redraw() {  // after a resize or a rotation: everything again at the new size
  if (state.photo && !$("photo-panel").hidden) renderPhoto();
  if (!$("video-panel").hidden) drawVideoOverlay();
}

let redrawQueued = false;
window.addEventListener("resize", () => {
  if (redrawQueued) return;
  redrawQueued = true;
  requestAnimationFrame(() => { redrawQueued = false; redraw(); });
});

$("file-input").addEventListener("change", (e) => handleFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); handleFile(e.dataTransfer.files[0]); });
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file-input").click(); });

document.querySelectorAll("nav button").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll("nav button").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== tab.dataset.view; });
  if (tab.dataset.view !== "view-webcam" && cam.socket) stopWebcam();
  redraw();
}));
$("cam-start").addEventListener("click", startWebcam);
$("cam-stop").addEventListener("click", stopWebcam);

fetch("/v1/health").then((r) => r.json()).then((h) => {
  $("server-status").textContent = `model ${h.model}, ${h.workers} worker${h.workers === 1 ? "" : "s"}`;
}).catch(() => { $("server-status").textContent = "server unreachable"; });
