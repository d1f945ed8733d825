// ferkit page: photos, video jobs and a live webcam overlay, drawn on canvases. No external assets.
"use strict";

const COLOURS = {  // the same colours as ferkit.inference.draw (matplotlib tab10)
  angry: "rgb(214,39,40)", disgust: "rgb(44,160,44)", fear: "rgb(148,103,189)", happy: "rgb(255,127,14)",
  sad: "rgb(31,119,180)", surprise: "rgb(23,190,207)", neutral: "rgb(127,127,127)", contempt: "rgb(140,86,75)",
};
const SPARE = ["rgb(227,119,194)", "rgb(188,189,34)", "rgb(174,199,232)", "rgb(255,187,120)"];
const $ = (id) => document.getElementById(id);
const state = { photo: null, hover: -1, job: null, frames: null, labels: [] };
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

// ---- drawing -------------------------------------------------------------------------------
function drawBoxes(ctx, faces, scale, highlight = -1) {
  const line = Math.max(2, Math.round(Math.max(ctx.canvas.width, ctx.canvas.height) / 400));
  const size = Math.max(12, Math.round(Math.max(ctx.canvas.width, ctx.canvas.height) / 50));
  ctx.font = `600 ${size}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  // Boxes first, then tags (so no line crosses a tag); the highlighted face last, on top.
  const order = faces.map((_, i) => i).filter((i) => i !== highlight);
  if (highlight >= 0 && highlight < faces.length) order.push(highlight);
  for (const i of order) {
    const [x, y, w, h] = faces[i].box.map((v) => v * scale);
    ctx.lineWidth = i === highlight ? line * 2 : line;
    ctx.strokeStyle = colour(faces[i].label);
    ctx.strokeRect(x, y, w, h);
  }
  for (const i of order) {
    const face = faces[i], [x, y] = face.box.map((v) => v * scale);
    const text = `${face.label} ${Math.round(face.confidence * 100)}%`;
    const tw = ctx.measureText(text).width + 8, th = size + 6;
    const ty = y - th >= 0 ? y - th : y;  // above the box, or inside its top edge
    const tx = Math.min(Math.max(0, x), Math.max(0, ctx.canvas.width - tw));
    ctx.fillStyle = colour(face.label);
    ctx.fillRect(tx, ty, tw, th);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, tx + 4, ty + 3);
  }
}

function drawBars(canvas, title, face) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  $(title).textContent = face ? `Probabilities: ${face.label} ${Math.round(face.confidence * 100)}%` : "Probabilities";
  if (!face) return;
  const entries = Object.entries(face.scores);
  const row = canvas.height / entries.length, left = 72, right = canvas.width - 44;
  ctx.font = "13px system-ui, sans-serif";
  ctx.textBaseline = "middle";
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
  const canvas = $("photo-canvas");
  const maxWidth = canvas.parentElement.clientWidth || 900;
  const scale = Math.min(1, maxWidth / result.width, 800 / result.height);
  canvas.width = Math.round(result.width * scale);
  canvas.height = Math.round(result.height * scale);
  state.photo = { result, image, scale };
  state.hover = result.faces.length ? 0 : -1;
  renderPhoto();
  $("face-list").replaceChildren(...result.faces.map((f, i) => {
    const li = document.createElement("li");
    li.textContent = `${f.label} ${Math.round(f.confidence * 100)}% at (${f.box.join(", ")})`;
    li.addEventListener("mouseenter", () => { state.hover = i; renderPhoto(); });
    return li;
  }));
  showPanel("photo-panel");
  const n = result.faces.length;
  say(`${n} face${n === 1 ? "" : "s"} found in ${file.name} (${result.elapsed_ms.toFixed(0)} ms on the server).`);
  canvas.dataset.faces = String(n);
}

function renderPhoto() {
  const { result, image, scale } = state.photo;
  const canvas = $("photo-canvas"), ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  drawBoxes(ctx, result.faces, scale, state.hover);
  drawBars($("bars"), "bars-title", result.faces[state.hover]);
}

$("photo-canvas").addEventListener("mousemove", (event) => {
  if (!state.photo) return;
  const canvas = event.currentTarget, rect = canvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * (canvas.width / rect.width) / state.photo.scale;
  const y = (event.clientY - rect.top) * (canvas.height / rect.height) / state.photo.scale;
  const hit = state.photo.result.faces.findIndex(({ box: [bx, by, bw, bh] }) =>
    x >= bx && x <= bx + bw && y >= by && y <= by + bh);
  if (hit >= 0 && hit !== state.hover) { state.hover = hit; renderPhoto(); }
});

// ---- videos --------------------------------------------------------------------------------
async function startJob(file) {
  say(`Uploading ${file.name}…`);
  showPanel("video-panel");
  const player = $("video-player");
  player.src = URL.createObjectURL(file);
  state.frames = null;
  drawTimeline();
  $("downloads").replaceChildren();
  const response = await fetch("/v1/jobs", { method: "POST", body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" } });
  if (!response.ok) { say(await errorText(response), true); return; }
  const job = await response.json();
  state.job = job.id;
  say(`Analysing ${file.name} (job ${job.id.slice(0, 8)})…`);
  pollJob(job.id);
}

async function pollJob(id) {
  if (state.job !== id) return;  // another upload replaced this one
  const response = await fetch(`/v1/jobs/${id}`);
  if (!response.ok) { say(await errorText(response), true); return; }
  const job = await response.json();
  const bar = $("job-progress");
  bar.value = job.progress;
  const total = job.frames_total ? ` of ${job.frames_total}` : "";
  $("job-status").textContent = `${job.state}: frame ${job.frames_done}${total} (${Math.round(job.progress * 100)}%)`;
  if (job.state === "queued" || job.state === "running") { setTimeout(() => pollJob(id), 400); return; }
  if (job.state !== "done") { say(`The job ${job.state}: ${job.error}`, true); return; }
  const doc = await (await fetch(job.results["frames.json"])).json();
  state.frames = doc.frames;
  state.labels = doc.labels;
  drawTimeline();
  $("downloads").replaceChildren(...Object.entries(job.results).map(([name, url]) => {
    const a = document.createElement("a");
    a.href = url; a.textContent = name; a.download = "";
    return a;
  }));
  const withFaces = doc.frames.filter((f) => f.faces.length).length;
  say(`Done: ${doc.video.frames} frames, ${doc.frames.length} analysed, faces in ${withFaces}.`);
}

function mainFace(faces) {  // the largest face: the one a timeline should follow
  let best = null;
  for (const f of faces) if (!best || f.box[2] * f.box[3] > best.box[2] * best.box[3]) best = f;
  return best;
}

function drawTimeline() {
  const canvas = $("timeline"), ctx = canvas.getContext("2d");
  canvas.width = canvas.clientWidth || 900;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const frames = state.frames;
  if (!frames || !frames.length) return;
  const pad = { l: 40, r: 90, t: 10, b: 24 }, w = canvas.width - pad.l - pad.r, h = canvas.height - pad.t - pad.b;
  const tMax = Math.max(frames[frames.length - 1].time_s, 1e-6);
  const X = (t) => pad.l + (t / tMax) * w, Y = (p) => pad.t + (1 - p) * h;
  ctx.strokeStyle = "#d6dae0"; ctx.fillStyle = "#69707a"; ctx.font = "11px system-ui, sans-serif";
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    ctx.beginPath(); ctx.moveTo(pad.l, Y(p)); ctx.lineTo(pad.l + w, Y(p)); ctx.stroke();
    ctx.fillText(`${p * 100}%`, 4, Y(p) + 4);
  }
  ctx.fillText("0 s", pad.l, canvas.height - 6);
  ctx.fillText(`${tMax.toFixed(1)} s`, pad.l + w - 30, canvas.height - 6);
  state.labels.forEach((label, k) => {
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
    ctx.fillText(label, pad.l + w + 8, pad.t + 12 + k * 15);
  });
  const now = $("video-player").currentTime;
  if (now > 0) {
    ctx.strokeStyle = "#1d2126"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(X(now), pad.t); ctx.lineTo(X(now), pad.t + h); ctx.stroke();
  }
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

function drawVideoOverlay() {
  const player = $("video-player"), overlay = $("video-overlay");
  if (!state.frames || !player.videoWidth) return;
  overlay.width = player.videoWidth; overlay.height = player.videoHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const frame = frameAt(player.currentTime);
  if (frame) drawBoxes(ctx, frame.faces, 1);
  drawTimeline();
}
["timeupdate", "seeked", "loadeddata"].forEach((e) => $("video-player").addEventListener(e, drawVideoOverlay));

// ---- webcam --------------------------------------------------------------------------------
const cam = { stream: null, socket: null, inFlight: 0, times: [], replies: 0, sendWidth: 320, timer: null };
state.live = cam;

async function startWebcam() {
  $("cam-status").textContent = "";
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    $("cam-status").textContent = `No webcam: ${err.message}`;
    return;
  }
  const video = $("cam-video");
  video.srcObject = cam.stream;
  await video.play();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  cam.socket = new WebSocket(`${scheme}://${location.host}/v1/live`);
  cam.socket.binaryType = "arraybuffer";
  cam.socket.onopen = () => { sendFrame(); sendFrame(); };  // two frames in flight hide the round trip
  cam.socket.onmessage = onLiveReply;
  cam.socket.onclose = () => { $("cam-status").textContent = "connection closed"; };
  $("cam-start").disabled = true; $("cam-stop").disabled = false;
  cam.timer = setInterval(updateRate, 250);
}

function stopWebcam() {
  if (cam.socket) cam.socket.close();
  if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
  clearInterval(cam.timer);
  Object.assign(cam, { stream: null, socket: null, inFlight: 0, times: [] });
  $("cam-start").disabled = false; $("cam-stop").disabled = true;
  $("cam-overlay").getContext("2d").clearRect(0, 0, $("cam-overlay").width, $("cam-overlay").height);
}

const grab = document.createElement("canvas");
function sendFrame() {
  const video = $("cam-video");
  if (!cam.socket || cam.socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  grab.width = cam.sendWidth;
  grab.height = Math.round(video.videoHeight * cam.sendWidth / video.videoWidth);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  cam.inFlight += 1;
  grab.toBlob((blob) => {
    if (blob && cam.socket && cam.socket.readyState === WebSocket.OPEN) cam.socket.send(blob);
    else cam.inFlight -= 1;
  }, "image/jpeg", 0.75);
}

function onLiveReply(event) {
  cam.inFlight = Math.max(0, cam.inFlight - 1);
  const reply = JSON.parse(event.data);
  cam.replies += 1;
  cam.times.push(performance.now());
  const video = $("cam-video"), overlay = $("cam-overlay");
  overlay.width = video.videoWidth; overlay.height = video.videoHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (reply.error) {
    $("cam-status").textContent = reply.error.message;
  } else {
    drawBoxes(ctx, reply.faces, overlay.width / reply.width);
    drawBars($("cam-bars"), "cam-bars-title", mainFace(reply.faces));
    overlay.dataset.faces = String(reply.faces.length);
  }
  while (cam.inFlight < 2) sendFrame();
}

function updateRate() {
  const now = performance.now();
  cam.times = cam.times.filter((t) => now - t <= 2000);
  const rate = cam.times.length / 2;
  $("cam-rate").textContent = `${rate.toFixed(1)} updates/s`;
  $("cam-rate").dataset.rate = String(rate);
}

// ---- wiring --------------------------------------------------------------------------------
function showPanel(id) {
  for (const p of ["photo-panel", "video-panel"]) $(p).hidden = p !== id;
}

function handleFile(file) {
  if (!file) return;
  const isVideo = file.type.startsWith("video/") || /\.(mp4|m4v|mov|webm|mkv|avi)$/i.test(file.name);
  (isVideo ? startJob(file) : analysePhoto(file)).catch((err) => say(`Failed: ${err.message}`, true));
}

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
}));
$("cam-start").addEventListener("click", startWebcam);
$("cam-stop").addEventListener("click", stopWebcam);

fetch("/v1/health").then((r) => r.json()).then((h) => {
  $("server-status").textContent = `model ${h.model}, ${h.workers} worker${h.workers === 1 ? "" : "s"}`;
}).catch(() => { $("server-status").textContent = "server unreachable"; });
