// ferkit page, webcam mode: camera frames to /v1/live over a WebSocket, live face tags and updates/s.
"use strict";

// A frame is sent only when the camera has delivered a new one (requestVideoFrameCallback, or a timer
// at the camera's frame rate), at most two in flight; so updates/s never exceed the camera's rate.
const cam = { stream: null, socket: null, session: 0, inFlight: 0, fresh: null, sent: [], answered: [],
  replies: 0, sendWidth: 320, timer: null, poll: null };
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
