// ferkit page, canvases: sizing for devicePixelRatio, face boxes and their tags (no overlaps), bars, colours.
"use strict";

const COLOURS = {  // the same colours as ferkit.inference.draw (matplotlib tab10)
  angry: "rgb(214,39,40)", disgust: "rgb(44,160,44)", fear: "rgb(148,103,189)", happy: "rgb(255,127,14)",
  sad: "rgb(31,119,180)", surprise: "rgb(23,190,207)", neutral: "rgb(127,127,127)", contempt: "rgb(140,86,75)",
};
const SPARE = ["rgb(227,119,194)", "rgb(188,189,34)", "rgb(174,199,232)", "rgb(255,187,120)"];

function colour(label) {
  if (COLOURS[label]) return COLOURS[label];
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return SPARE[h % SPARE.length];
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
