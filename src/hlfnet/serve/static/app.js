// hlfnet serve: the page. Vanilla JavaScript, no external assets; talks only to this server's /api/v1.
"use strict";

const API = "/api/v1";
const PARALLEL = 4; // uploads at once: the server batches them into one forward pass
const $ = (id) => document.getElementById(id);
const state = { model: null, token: sessionStorage.getItem("hlfnet-token") || "", cards: [], truths: [] };

function authHeaders() {
  return state.token ? { Authorization: "Bearer " + state.token } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function apiError(response) {
  // every API error is {"error": {"code", "message"}}; anything else gets a plain sentence
  try {
    const body = await response.json();
    if (body && body.error) return body.error.message + " (" + body.error.code + ")";
  } catch (e) { /* not JSON */ }
  return "the server answered " + response.status + " " + response.statusText;
}

async function loadModel() {
  let response;
  try {
    response = await fetch(API + "/models", { headers: authHeaders() });
  } catch (e) {
    $("model").textContent = "server unreachable";
    showError("Cannot reach the server: is hlfnet serve still running?");
    return;
  }
  if (response.status === 401) {
    $("token-row").hidden = false;
    $("model").textContent = "this server needs an access token";
    return;
  }
  if (!response.ok) {
    $("model").textContent = "model unavailable";
    showError(await apiError(response));
    return;
  }
  const body = await response.json();
  state.model = body.models[0];
  state.limits = body.limits;
  const m = state.model;
  $("model").textContent = "model: " + m.name + " · input " + m.input_size.join("×") +
    (m.attention ? " · attention maps available" : "");
  $("show-attention").parentElement.hidden = !m.attention;
  showLegend(m);
  $("token-row").hidden = true;
  showError("");
}

function foreground() {
  // the foreground classes of the served model (index, stored value, name, colours), background dropped
  return state.model && state.model.classes ? state.model.classes.filter((c) => c.index > 0)
    : [{ index: 1, value: 255, name: "class 1", colour: "#e6281e", outline: "#32cd32" }];
}

function swatch(colour, outline) {
  const s = document.createElement("span");
  s.className = outline ? "swatch outline" : "swatch";
  s.style.setProperty(outline ? "border-color" : "background-color", colour);
  return s;
}

function showLegend(model) {
  // one entry per foreground class: its fill (prediction) and outline (ground truth) colours and its name
  const box = $("legend");
  box.replaceChildren();
  const title = document.createElement("span");
  title.className = "muted";
  title.textContent = "prediction filled, ground truth outlined:";
  box.append(title);
  for (const c of foreground()) {
    const item = document.createElement("span");
    item.className = "legend-item";
    item.dataset.class = String(c.index);
    const name = document.createElement("span");
    name.className = "legend-name";
    name.textContent = c.name;
    item.append(swatch(c.colour, false), swatch(c.outline, true), name);
    box.append(item);
  }
  box.hidden = false;
}

function rgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function isVolume(name) {
  const n = name.toLowerCase();
  return n.endsWith(".nii") || n.endsWith(".nii.gz");
}

function stem(name) {
  return name.replace(/\.nii\.gz$/i, "").replace(/\.[^.]+$/, "");
}

function bytesFromB64(b64) {
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser could not display an image"));
    img.src = src;
  });
}

function fact(dl, term, value, cls) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (cls) dd.className = cls;
  dl.append(dt, dd);
}

function fmt(x, digits) {
  return Number(x).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// ---------------------------------------------------------------------------------------------- drawing

async function classIndices(labelsSrc, width, height) {
  // a PNG of class indices (0 = background) as one index per pixel
  const picture = await loadImage(labelsSrc);
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  const ctx = c.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(picture, 0, 0, width, height);
  const px = ctx.getImageData(0, 0, width, height).data;
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) out[i] = px[4 * i];
  return out;
}

function paint(labels, width, height, colourOf) {
  // a transparent layer with each labelled pixel in its class's colour
  const layer = document.createElement("canvas");
  layer.width = width;
  layer.height = height;
  const ctx = layer.getContext("2d");
  const data = ctx.createImageData(width, height);
  const px = data.data;
  const colours = {};
  for (const c of foreground()) colours[c.index] = rgb(colourOf(c));
  for (let i = 0; i < labels.length; i++) {
    const colour = colours[labels[i]];
    if (!colour) continue;
    px[4 * i] = colour[0]; px[4 * i + 1] = colour[1]; px[4 * i + 2] = colour[2]; px[4 * i + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  return layer;
}

async function maskLayer(labelsSrc, width, height) {
  // the predicted classes, each filled with its colour
  return paint(await classIndices(labelsSrc, width, height), width, height, (c) => c.colour);
}

async function outlineLayer(labelsSrc, width, height) {
  // the ground truth's boundary pixels (a 4-neighbour of another class), in each class's outline colour,
  // thickened so that the outline stays visible when the picture is shown smaller than its size
  const labels = await classIndices(labelsSrc, width, height);
  const edge = new Uint8Array(labels.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const k = labels[i];
      if (!k) continue;
      if (x === 0 || y === 0 || x === width - 1 || y === height - 1 || labels[i - 1] !== k ||
          labels[i + 1] !== k || labels[i - width] !== k || labels[i + width] !== k) edge[i] = k;
    }
  }
  const radius = Math.max(0, Math.round(Math.max(width, height) / 320) - 1);
  let lines = edge;
  if (radius > 0) {
    lines = new Uint8Array(edge.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const k = edge[y * width + x];
        if (!k) continue;
        for (let dy = -radius; dy <= radius; dy++) {
          for (let dx = -radius; dx <= radius; dx++) {
            const yy = y + dy, xx = x + dx;
            if (yy >= 0 && yy < height && xx >= 0 && xx < width) lines[yy * width + xx] = k;
          }
        }
      }
    }
  }
  return paint(lines, width, height, (c) => c.outline);
}

function draw(card) {
  const { canvas, image, layer } = card;
  if (!image || !layer) return;
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = Number($("opacity").value) / 100;
  ctx.drawImage(layer, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  if (card.outline) ctx.drawImage(card.outline, 0, 0, canvas.width, canvas.height);
}

function redrawAll() {
  $("opacity-value").textContent = $("opacity").value + " %";
  state.cards.forEach(draw);
}

// ---------------------------------------------------------------------------------------------- cards

function newCard(file) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  node.querySelector(".name").textContent = file.name;
  $("results").append(node);
  const card = {
    file, node, canvas: node.querySelector("canvas"), result: null, image: null, layer: null, outline: null,
  };
  state.cards.push(card);
  return card;
}

function fail(card, message) {
  card.node.dataset.state = "error";
  card.node.querySelector(".status").textContent = "failed";
  const box = card.node.querySelector(".card-error");
  box.textContent = message;
  box.hidden = false;
}

function downloadLink(dl, result, bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = result.mask_filename;
  a.className = "download";
  a.textContent = "download mask (" + (type === "image/png" ? "PNG" : "NIfTI") + ")";
  const dt = document.createElement("dt");
  dt.textContent = "mask";
  const dd = document.createElement("dd");
  dd.append(a);
  dl.append(dt, dd);
}

async function showImage(card, r) {
  const image = await loadImage("data:image/png;base64," + r.image_png);
  card.image = image;
  card.canvas.width = image.naturalWidth;
  card.canvas.height = image.naturalHeight;
  card.layer = await maskLayer("data:image/png;base64," + r.labels_png, image.naturalWidth, image.naturalHeight);
  card.maskBytes = bytesFromB64(r.mask_png);
  draw(card);
  const dl = card.node.querySelector(".facts");
  dl.replaceChildren();
  fact(dl, "size", r.size[1] + " × " + r.size[0] + " px");
  const multi = foreground().length > 1;
  fact(dl, multi ? "foreground area" : "lesion area",
    fmt(r.area.pixels, 0) + " px (" + fmt(100 * r.area.fraction, 1) + " %)", "area");
  if (multi && r.area.pixels_per_class) {
    for (const c of foreground()) {
      fact(dl, c.name, fmt(r.area.pixels_per_class[String(c.index)] || 0, 0) + " px", "area-class" + c.index);
    }
  }
  if (r.area.mm2 !== null) fact(dl, "area (from DPI)", fmt(r.area.mm2, 1) + " mm²", "area-mm");
  fact(dl, "inference", fmt(r.timing.inference_ms, 0) + " ms (batch of " + r.batch_size + ")");
  downloadLink(dl, r, card.maskBytes, "image/png");
  card.scoresAt = dl;
  if (r.attention && r.attention.length) showAttention(card, r.attention);
}

function showAttention(card, maps) {
  const box = card.node.querySelector(".attention");
  box.replaceChildren();
  for (const kind of ["lfe", "hfe"]) {
    const group = maps.filter((m) => m.kind === kind);
    if (!group.length) continue;
    const title = document.createElement("div");
    title.className = "group";
    title.textContent = kind === "lfe"
      ? "LFE σ(s′), encoder shallow → deep" : "HFE spatial s̃, decoder deep → shallow";
    box.append(title);
    for (const m of group) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + m.png;
      img.alt = m.name;
      const cap = document.createElement("figcaption");
      cap.textContent = m.name + " · " + m.size.join("×") + " · " + fmt(m.min, 2) + "–" + fmt(m.max, 2);
      fig.append(img, cap);
      box.append(fig);
    }
  }
  box.hidden = !$("show-attention").checked;
}

async function showVolume(card, r) {
  card.slices = r.slice_previews || [];
  card.maskBytes = bytesFromB64(r.mask_nifti);
  const dl = card.node.querySelector(".facts");
  dl.replaceChildren();
  fact(dl, "shape", r.shape.join(" × "));
  fact(dl, "volume", fmt(r.area.voxels, 0) + " voxels" +
    (r.area.ml !== null ? " · " + fmt(r.area.ml, 1) + " mL" : ""), "area");
  fact(dl, "slice area", "", "slice-area");
  fact(dl, "inference", fmt(r.timing.inference_ms, 0) + " ms");
  downloadLink(dl, r, card.maskBytes, "application/gzip");
  card.scoresAt = dl;
  const slider = card.node.querySelector(".slice");
  slider.max = String(Math.max(0, card.slices.length - 1));
  // start on the slice with the largest prediction
  let best = 0;
  card.slices.forEach((s, k) => { if (s.pixels > card.slices[best].pixels) best = k; });
  slider.value = String(best);
  card.node.querySelector(".slices").hidden = card.slices.length < 2;
  const show = async () => {
    const k = Number(slider.value);
    const s = card.slices[k];
    if (!s) return;
    const image = await loadImage("data:image/png;base64," + s.image_png);
    card.image = image;
    card.canvas.width = image.naturalWidth;
    card.canvas.height = image.naturalHeight;
    card.layer = await maskLayer("data:image/png;base64," + s.labels_png, image.naturalWidth, image.naturalHeight);
    card.outline = card.truthSlices && card.truthSlices[k]
      ? await outlineLayer("data:image/png;base64," + card.truthSlices[k], image.naturalWidth, image.naturalHeight)
      : null;
    draw(card);
    card.node.querySelector(".slice-label").textContent = "slice " + (k + 1) + " / " + card.slices.length;
    const area = s.pixels * (r.area.voxel_size_mm ? r.area.voxel_size_mm[0] * r.area.voxel_size_mm[1] : 0);
    card.node.querySelector(".slice-area").textContent = fmt(s.pixels, 0) + " px" +
      (r.area.voxel_size_mm ? " · " + fmt(area, 1) + " mm²" : "");
  };
  slider.oninput = show;
  card.showSlice = show;
  await show();
}

// ---------------------------------------------------------------------------------------------- work

async function predict(card) {
  const form = new FormData();
  form.append("file", card.file, card.file.name);
  const attention = state.model && state.model.attention && !isVolume(card.file.name);
  const query = "?format=json&preview=true" + (attention ? "&attention=true" : "");
  let response;
  try {
    response = await fetch(API + "/predict" + query, { method: "POST", body: form, headers: authHeaders() });
  } catch (e) {
    fail(card, "The upload failed: the server could not be reached.");
    return;
  }
  if (!response.ok) {
    if (response.status === 401) $("token-row").hidden = false;
    fail(card, await apiError(response));
    return;
  }
  const r = await response.json();
  card.result = r;
  try {
    if (r.kind === "volume") await showVolume(card, r); else await showImage(card, r);
  } catch (e) {
    fail(card, "Could not display the result: " + e.message);
    return;
  }
  card.node.querySelector(".view").hidden = false;
  card.node.querySelector(".status").textContent = "done";
  card.node.dataset.state = "done";
  await scoreCard(card);
}

function truthFor(card) {
  if (!state.truths.length) return null;
  if (state.truths.length === 1 && state.cards.length === 1) return state.truths[0];
  const s = stem(card.file.name);
  return state.truths.find((t) => stem(t.name) === s || stem(t.name).startsWith(s + "_")) || null;
}

async function scoreCard(card) {
  const truth = truthFor(card);
  if (!truth || !card.result || card.node.dataset.state !== "done") return;
  const r = card.result;
  const form = new FormData();
  const type = r.kind === "volume" ? "application/gzip" : "image/png";
  form.append("prediction", new Blob([card.maskBytes], { type }), r.mask_filename);
  form.append("ground_truth", truth, truth.name);
  const dl = card.scoresAt;
  dl.querySelectorAll(".score").forEach((n) => n.remove());
  const response = await fetch(API + "/score?labels=true", { method: "POST", body: form, headers: authHeaders() });
  if (!response.ok) {
    const box = card.node.querySelector(".card-error");
    box.textContent = "Scoring against " + truth.name + " failed: " + (await apiError(response));
    box.hidden = false;
    return;
  }
  const body = await response.json();
  const scores = body.scores;
  const unit = body.surface_units === "mm" ? " mm" : " px";
  const rows = [["dice", "Dice", 4, ""], ["jaccard", "IoU (Jaccard)", 4, ""], ["accuracy", "accuracy", 4, ""],
    ["hd95", "HD95", 2, unit], ["assd", "ASSD", 2, unit], ["nsd", "NSD", 4, ""]];
  for (const [key, label, digits, suffix] of rows) {
    if (!(key in scores)) continue;
    const dt = document.createElement("dt");
    dt.textContent = label;
    dt.className = "score";
    const dd = document.createElement("dd");
    dd.textContent = scores[key] === null ? "n/a" : fmt(scores[key], digits) + suffix;
    dd.className = "score score-" + key;
    dl.append(dt, dd);
  }
  showClassScores(card, body, unit);
  if (body.ground_truth_png) {
    card.outline = await outlineLayer("data:image/png;base64," + body.ground_truth_png,
      card.canvas.width, card.canvas.height);
    draw(card);
  } else if (body.ground_truth_slices) {
    card.truthSlices = body.ground_truth_slices;
    if (card.showSlice) await card.showSlice();
  }
  card.node.dataset.scored = "true";
}

function showClassScores(card, body, unit) {
  // one row per foreground class: its colours, name, Dice, IoU, HD95, ASSD, NSD
  const box = card.node.querySelector(".class-scores");
  box.replaceChildren();
  const head = document.createElement("tr");
  for (const h of ["class", "Dice", "IoU", "HD95" + unit, "ASSD" + unit, "NSD"]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  box.append(head);
  const colours = {};
  for (const c of foreground()) colours[c.index] = c;
  for (const row of body.per_class) {
    const tr = document.createElement("tr");
    tr.className = "class-row";
    tr.dataset.class = String(row.class);
    const name = document.createElement("td");
    const c = colours[row.class];
    if (c) name.append(swatch(c.colour, false), swatch(c.outline, true));
    name.append(document.createTextNode(row.name));
    tr.append(name);
    for (const [key, digits] of [["dice", 4], ["jaccard", 4], ["hd95", 2], ["assd", 2], ["nsd", 4]]) {
      const td = document.createElement("td");
      td.className = "cs-" + key;
      td.textContent = row[key] === undefined ? "—" : row[key] === null ? "n/a" : fmt(row[key], digits);
      tr.append(td);
    }
    box.append(tr);
  }
  box.hidden = body.per_class.length < 2; // binary: the rows above are that class's scores
}

async function run(files) {
  showError("");
  if (!state.model) await loadModel();
  const supported = /\.(png|jpe?g|bmp|tiff?|nii|nii\.gz)$/i;
  const bad = files.filter((f) => !supported.test(f.name));
  if (bad.length) showError("Skipped " + bad.map((f) => f.name).join(", ") +
    ": not an image (PNG, JPG, BMP, TIFF) or a NIfTI volume.");
  const cards = files.filter((f) => supported.test(f.name)).map(newCard);
  if (!cards.length) return;
  let done = 0;
  const progress = () => {
    $("progress").hidden = false;
    $("progress-bar").style.width = (100 * done / cards.length) + "%";
    $("progress-text").textContent = done < cards.length
      ? "segmenting " + (done + 1 > cards.length ? cards.length : done + 1) + " of " + cards.length + "…"
      : "done: " + cards.length + " file" + (cards.length > 1 ? "s" : "");
  };
  progress();
  let next = 0;
  const worker = async () => {
    while (next < cards.length) {
      const card = cards[next++];
      await predict(card);
      done++;
      progress();
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, cards.length) }, worker));
}

function setup() {
  const drop = $("drop");
  $("files").addEventListener("change", (e) => { run(Array.from(e.target.files)); e.target.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    run(Array.from(e.dataTransfer.files));
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("files").click(); });
  $("truth").addEventListener("change", (e) => {
    state.truths = Array.from(e.target.files);
    $("truth-names").textContent = state.truths.map((f) => f.name).join(", ") || "none";
    state.cards.forEach(scoreCard);
  });
  $("opacity").addEventListener("input", redrawAll);
  $("show-attention").addEventListener("change", () => {
    document.querySelectorAll(".attention").forEach((n) => {
      n.hidden = !$("show-attention").checked || !n.children.length;
    });
  });
  $("token-save").addEventListener("click", () => {
    state.token = $("token").value.trim();
    sessionStorage.setItem("hlfnet-token", state.token);
    loadModel();
  });
  loadModel();
}

document.addEventListener("DOMContentLoaded", setup);
