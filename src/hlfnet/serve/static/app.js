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
  $("token-row").hidden = true;
  showError("");
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

async function maskLayer(maskSrc, width, height) {
  // the 0/255 mask as a red layer with transparent background
  const mask = await loadImage(maskSrc);
  const layer = document.createElement("canvas");
  layer.width = width;
  layer.height = height;
  const ctx = layer.getContext("2d");
  ctx.drawImage(mask, 0, 0, width, height);
  const data = ctx.getImageData(0, 0, width, height);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const on = px[i] > 0;
    px[i] = 230; px[i + 1] = 40; px[i + 2] = 30; px[i + 3] = on ? 255 : 0;
  }
  ctx.putImageData(data, 0, 0);
  return layer;
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
  const card = { file, node, canvas: node.querySelector("canvas"), result: null, image: null, layer: null };
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
  card.layer = await maskLayer("data:image/png;base64," + r.mask_png, image.naturalWidth, image.naturalHeight);
  card.maskBytes = bytesFromB64(r.mask_png);
  draw(card);
  const dl = card.node.querySelector(".facts");
  dl.replaceChildren();
  fact(dl, "size", r.size[1] + " × " + r.size[0] + " px");
  fact(dl, "lesion area", fmt(r.area.pixels, 0) + " px (" + fmt(100 * r.area.fraction, 1) + " %)", "area");
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
    card.layer = await maskLayer("data:image/png;base64," + s.mask_png, image.naturalWidth, image.naturalHeight);
    draw(card);
    card.node.querySelector(".slice-label").textContent = "slice " + (k + 1) + " / " + card.slices.length;
    const area = s.pixels * (r.area.voxel_size_mm ? r.area.voxel_size_mm[0] * r.area.voxel_size_mm[1] : 0);
    card.node.querySelector(".slice-area").textContent = fmt(s.pixels, 0) + " px" +
      (r.area.voxel_size_mm ? " · " + fmt(area, 1) + " mm²" : "");
  };
  slider.oninput = show;
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
  const response = await fetch(API + "/score", { method: "POST", body: form, headers: authHeaders() });
  if (!response.ok) {
    const box = card.node.querySelector(".card-error");
    box.textContent = "Scoring against " + truth.name + " failed: " + (await apiError(response));
    box.hidden = false;
    return;
  }
  const { scores } = await response.json();
  for (const [key, label] of [["dice", "Dice"], ["jaccard", "Jaccard"], ["accuracy", "accuracy"]]) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    dt.className = "score";
    const dd = document.createElement("dd");
    dd.textContent = fmt(scores[key], 4);
    dd.className = "score score-" + key;
    dl.append(dt, dd);
  }
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
