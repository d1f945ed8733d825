// ferkit page: photos, video jobs and a live webcam overlay, drawn on canvases. No external assets.
"use strict";

const COLOURS = {  // the same colours as ferkit.inference.draw (matplotlib tab10)
  angry: "rgb(214,39,40)", disgust: "rgb(44,160,44)", fear: "rgb(148,103,189)", happy: "rgb(255,127,14)",
  sad: "rgb(31,119,180)", surprise: "rgb(23,190,207)", neutral: "rgb(127,127,127)", contempt: "rgb(140,86,75)",
};
const SPARE = ["rgb(227,119,194)", "rgb(188,189,34)", "rgb(174,199,232)", "rgb(255,187,120)"];
const $ = (id) => document.getElementById(id);
// tags: per canvas id, the face tags last drawn there, in CSS pixels of that canvas ({face, x, y, w, h, font}).
const state = { photo: null, hover: -1, job: null, uploads: 0, frames: null, labels: [],
  original: null, result: null, tags: {} };
window.ferkit = state;  // for the browser test and for curious users

function colour(label) {
  if (COLOURS[label]) return COLOURS[label];
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return SPARE[h % SPARE.length];
}

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

// ---- canvases in CSS pixels ------------------------------------------------------------------
// Every canvas gets a backing store of its displayed size times devicePixelRatio and is drawn in
// CSS pixels, so text has the same size on a phone as on a desktop and stays sharp.
function fitCanvas(canvas, cssWidth, cssHeight) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(cssWidth * dpr)), height = Math.max(1, Math.round(cssHeight * dpr));
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssWidth, cssHeight);
  return ctx;
}

function fitToDisplay(canvas) {  // a canvas whose CSS decides its size; null while it is hidden
  const w = canvas.clientWidth, h = canvas.clientHeight;
  return w && h ? { ctx: fitCanvas(canvas, w, h), area: { w, h } } : null;
}

// ---- face tags: laid out so that no two overlap ------------------------------------------------
const TAG_PAD = 4, STACK = 6;

function tagFont(areaWidth) { return Math.round(Math.min(16, Math.max(13, areaWidth / 60))); }
function tagText(face) { return `${face.label} ${Math.round(face.confidence * 100)}%`; }
function overlaps(a, b) { return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h; }
function clamp(v, lo, hi) { return Math.min(Math.max(v, lo), hi); }

function tagSpots(box, size, area) {  // spots beside the box, best first: above, inside, below, then stacked outwards
  const { w, h } = size;
  const xs = [box.x, box.x + box.w - w].map((x) => clamp(x, 0, Math.max(0, area.w - w)));
  const ys = [box.y - h, box.y, box.y + box.h, box.y + box.h - h];
  for (let k = 1; k <= STACK; k++) ys.push(box.y - h * (k + 1), box.y + box.h + h * k);
  return ys.flatMap((y) => xs.map((x) => ({ x, y, w, h }))).filter((r) => r.y >= 0 && r.y + r.h <= area.h);
}

function gridSpots(box, size, area) {  // anywhere on the canvas, nearest the box first
  const spots = [];
  for (let y = 0; y + size.h <= area.h; y += size.h / 2) {
    for (let x = 0; x + size.w <= area.w; x += size.w / 4) spots.push({ x, y, ...size });
  }
  const distance = (r) => Math.hypot(r.x - box.x, r.y - box.y);
  return spots.sort((a, b) => distance(a) - distance(b));
}

function placeTag(box, size, others, taken, area) {
  const free = (r) => !taken.some((t) => overlaps(t, r));
  const clear = (r) => !others.some((b) => overlaps(b, r));  // hides no other face
  const near = tagSpots(box, size, area);
  return near.find((r) => free(r) && clear(r)) || near.find(free) || gridSpots(box, size, area).find(free)
    || near[0] || { x: 0, y: 0, ...size };  // overlap only when the canvas cannot hold every tag
}

function layoutTags(ctx, faces, boxes, area, font) {  // top faces first; independent of the highlight
  const order = boxes.map((_, i) => i).sort((a, b) => boxes[a].y - boxes[b].y || boxes[a].x - boxes[b].x);
  const tags = [];
  for (const i of order) {
    const size = { w: Math.ceil(ctx.measureText(tagText(faces[i])).width) + 2 * TAG_PAD, h: font + 2 * TAG_PAD };
    const others = boxes.filter((_, j) => j !== i);
    tags[i] = placeTag(boxes[i], size, others, tags.filter(Boolean), area);
  }
  return tags;
}

function paintTag(ctx, tag, box, face) {
  const x = clamp(tag.x + tag.w / 2, box.x, box.x + box.w), y = clamp(tag.y + tag.h / 2, box.y, box.y + box.h);
  const fx = clamp(x, tag.x, tag.x + tag.w), fy = clamp(y, tag.y, tag.y + tag.h);
  ctx.fillStyle = ctx.strokeStyle = colour(face.label);
  if (Math.hypot(x - fx, y - fy) > 1) {  // a tag moved away from its box: a line leads back to it
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(fx, fy); ctx.lineTo(x, y); ctx.stroke();
  }
  ctx.fillRect(tag.x, tag.y, tag.w, tag.h);
  ctx.fillStyle = "#fff";
  ctx.fillText(tagText(face), tag.x + TAG_PAD, tag.y + tag.h / 2);
}

function drawOrder(n, highlight) {  // the highlighted face last, on top
  const order = [...Array(n).keys()].filter((i) => i !== highlight);
  if (highlight >= 0 && highlight < n) order.push(highlight);
  return order;
}

// Boxes (in the image's pixels, times `scale` to CSS pixels), then their tags; returns the tags.
function drawFaces(ctx, faces, scale, area, highlight = -1) {
  const font = tagFont(area.w);
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  const boxes = faces.map(({ box: [x, y, w, h] }) => ({ x: x * scale, y: y * scale, w: w * scale, h: h * scale }));
  const tags = layoutTags(ctx, faces, boxes, area, font);
  const order = drawOrder(faces.length, highlight);
  for (const i of order) {
    ctx.lineWidth = i === highlight ? 4 : 2;
    ctx.strokeStyle = colour(faces[i].label);
    ctx.strokeRect(boxes[i].x, boxes[i].y, boxes[i].w, boxes[i].h);
  }
  for (const i of order) paintTag(ctx, tags[i], boxes[i], faces[i]);
  return tags.map((t, i) => ({ face: i, x: t.x, y: t.y, w: t.w, h: t.h, font }));
}

// ---- probability bars ----------------------------------------------------------------------
function drawBars(canvas, title, face) {
  $(title).textContent = face ? `Probabilities: ${face.label} ${Math.round(face.confidence * 100)}%` : "Probabilities";
  const fit = fitToDisplay(canvas);
  if (!fit || !face) return;
  const { ctx, area } = fit, entries = Object.entries(face.scores);
  ctx.font = "13px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  const widest = (texts) => Math.max(...texts.map((t) => ctx.measureText(t).width));
  const left = widest(entries.map(([label]) => label)) + 8, right = area.w - widest(["100.0%"]) - 8;
  const row = area.h / entries.length;
  entries.forEach(([label, p], i) => {
    const y = i * row;
    ctx.fillStyle = "#1d2126";
    ctx.fillText(label, 0, y + row / 2);
    ctx.fillStyle = "#e6e9ee";
    ctx.fillRect(left, y + 4, right - left, row - 8);
    ctx.fillStyle = colour(label);
    ctx.fillRect(left, y + 4, (right - left) * p, row - 8);
    ctx.fillStyle = "#1d2126";
    ctx.fillText(`${(p * 100).toFixed(1)}%`, right + 4, y + row / 2);
  });
  canvas.dataset.label = face.label;
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

// ---- webcam --------------------------------------------------------------------------------
// A frame is sent only when the camera has delivered a new one (requestVideoFrameCallback, or a timer
// at the camera's frame rate), at most two in flight; so updates/s never exceed the camera's rate.
const cam = { stream: null, socket: null, session: 0, inFlight: 0, fresh: null, sent: [], answered: [],
  replies: 0, sendWidth: 320, timer: null, poll: null };
state.live = cam;
const RATE_WINDOW_MS = 2000;

async function startWebcam() {
  $("cam-status").textContent = "";
  $("cam-start").disabled = true;  // one start at a time
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    $("cam-status").textContent = `No webcam: ${err.message}`;
    $("cam-start").disabled = false;
    return;
  }
  const video = $("cam-video"), session = ++cam.session;
  video.srcObject = cam.stream;
  await video.play();
  Object.assign(cam, { inFlight: 0, fresh: null, sent: [], answered: [], replies: 0 });
  cam.socket = openSocket(session);
  watchFrames(video, session);
  $("cam-stop").disabled = false;
  cam.timer = setInterval(updateRate, 250);
}

function openSocket(session) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/live`);
  socket.binaryType = "arraybuffer";
  const current = () => session === cam.session;
  socket.onopen = () => { if (current()) pump(); };
  socket.onmessage = (event) => { if (current()) onLiveReply(JSON.parse(event.data)); };
  socket.onclose = () => { if (current()) $("cam-status").textContent = "connection closed"; };
  return socket;
}

function watchFrames(video, session) {
  const current = () => session === cam.session;
  if ("requestVideoFrameCallback" in video) {
    const onFrame = (now, meta) => {
      if (!current()) return;
      newFrame(meta.captureTime ?? now);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  } else {
    const fps = cam.stream.getVideoTracks()[0].getSettings().frameRate || 30;
    cam.poll = setInterval(() => newFrame(performance.now()), 1000 / fps);
  }
}

function newFrame(time) {
  cam.fresh = time;
  pump();
}

function pump() {  // two frames in flight hide the round trip
  if (cam.inFlight < 2 && cam.fresh !== null) sendFrame();
}

const grab = document.createElement("canvas");
function sendFrame() {
  const video = $("cam-video"), socket = cam.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  grab.width = cam.sendWidth;
  grab.height = Math.round(video.videoHeight * cam.sendWidth / video.videoWidth);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  cam.sent.push(cam.fresh);
  cam.fresh = null;
  cam.inFlight += 1;
  grab.toBlob((blob) => {
    if (blob && socket === cam.socket && socket.readyState === WebSocket.OPEN) { socket.send(blob); return; }
    cam.inFlight = Math.max(0, cam.inFlight - 1);
    cam.sent.pop();
  }, "image/jpeg", 0.75);
}

function onLiveReply(reply) {  // replies come in the order the frames went out
  cam.inFlight = Math.max(0, cam.inFlight - 1);
  cam.replies += 1;
  cam.answered.push({ at: performance.now(), frame: cam.sent.shift() ?? performance.now() });
  const fit = fitToDisplay($("cam-overlay"));
  if (reply.error) {
    $("cam-status").textContent = reply.error.message;
  } else if (fit) {
    state.tags["cam-overlay"] = drawFaces(fit.ctx, reply.faces, fit.area.w / reply.width, fit.area);
    drawBars($("cam-bars"), "cam-bars-title", mainFace(reply.faces));
    $("cam-overlay").dataset.faces = String(reply.faces.length);
  }
  pump();
}

function liveRate(answered) {  // answered camera frames per second, over the camera's own clock
  if (answered.length < 2) return answered.length / (RATE_WINDOW_MS / 1000);
  const span = (answered[answered.length - 1].frame - answered[0].frame) / 1000;
  const byCamera = span > 0 ? (answered.length - 1) / span : 0;
  return Math.min(byCamera, answered.length / (RATE_WINDOW_MS / 1000));  // the second falls when replies stall
}

function updateRate() {
  const now = performance.now();
  cam.answered = cam.answered.filter((a) => now - a.at <= RATE_WINDOW_MS);
  showRate(liveRate(cam.answered));
}

function showRate(rate) {
  $("cam-rate").textContent = `${rate.toFixed(1)} updates/s`;
  $("cam-rate").dataset.rate = String(rate);
}

function stopWebcam() {
  cam.session += 1;  // late replies and frame callbacks of this session are ignored from now on
  if (cam.socket) cam.socket.close();
  if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
  clearInterval(cam.timer);
  clearInterval(cam.poll);
  Object.assign(cam, { stream: null, socket: null, inFlight: 0, fresh: null, sent: [], answered: [] });
  $("cam-video").srcObject = null;
  $("cam-start").disabled = false; $("cam-stop").disabled = true;
  $("cam-status").textContent = "stopped";
  showRate(0);
  fitCanvas($("cam-overlay"), 1, 1);
  state.tags["cam-overlay"] = [];
  delete $("cam-overlay").dataset.faces;
  drawBars($("cam-bars"), "cam-bars-title", null);
}

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
