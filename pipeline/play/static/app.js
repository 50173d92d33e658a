// boorugan play: draw from, compare and walk the trained models. No build step, no libraries.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], byName: {}, picked: null, lastGrid: null };
window.playRequests = []; // every API call the page made, newest last (shown under "last request" too)

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k in e && k !== "list") e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  window.playRequests.push({ path, body });
  if (body !== undefined && body.image === undefined) $("gen-request").textContent = `POST ${path}\n${JSON.stringify(body, null, 1)}`;
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
  return data;
}

async function guarded(box, fn) {
  if (box) box.classList.add("busy");
  try {
    showError("");
    await fn();
  } catch (e) {
    showError(e.message);
  } finally {
    if (box) {
      box.classList.remove("busy");
      box.dataset.seq = String(Number(box.dataset.seq || 0) + 1); // tests wait on this
    }
  }
}

// ---- models and their MLflow runs

const noise = () => state.models.filter((m) => !m.error && !m.sketch);
const sketchers = () => state.models.filter((m) => !m.error && m.sketch);

function fillSelect(sel, models) {
  const keep = sel.value;
  sel.replaceChildren(...models.map((m) => el("option", { value: m.name, textContent: `${m.name} (step ${m.step})` })));
  if (models.some((m) => m.name === keep)) sel.value = keep;
}

function attributeControls(box, vocab, onChange) {
  const before = Object.fromEntries([...box.querySelectorAll("select")].map((s) => [s.dataset.attr, s.value]));
  box.replaceChildren(...Object.entries(vocab).map(([attr, values]) => {
    const sel = el("select", { dataset: { attr } }, el("option", { value: "random", textContent: "random" }),
      ...values.map((v) => el("option", { value: v, textContent: v })));
    if (values.includes(before[attr])) sel.value = before[attr];
    if (onChange) sel.addEventListener("change", onChange);
    return el("label", {}, attr.replace(/_/g, " ") + " ", sel);
  }));
}

const attributesOf = (box) => Object.fromEntries([...box.querySelectorAll("select")].map((s) => [s.dataset.attr, s.value]));

function unionVocab(models) {
  const out = {};
  for (const m of models) for (const [a, vs] of Object.entries(m.vocab || {})) out[a] = [...new Set([...(out[a] || []), ...vs])];
  return out;
}

async function loadModels() {
  const data = await api("/api/models");
  state.models = data.models;
  state.byName = Object.fromEntries(data.models.map((m) => [m.name, m]));
  $("where").textContent = `${data.models.length} model${data.models.length === 1 ? "" : "s"} in ${data.runs} · drawing on ${data.device}`;
  $("model-list").replaceChildren(...data.models.map((m) => el("li", { dataset: { model: m.name }, title: m.error || "" },
    m.name, el("span", { className: "meta", textContent: m.error ? `unusable: ${m.error}` :
      `${m.arch} · ${m.family} · ${m.image_size}px · step ${m.step}` + (m.conditional ? ` · ${Object.keys(m.vocab).join(", ")}` : "") }))));
  for (const li of $("model-list").children) li.addEventListener("click", () => pickModel(li.dataset.model));
  fillSelect($("gen-model"), noise());
  fillSelect($("walk-model"), noise());
  fillSelect($("sketch-model"), sketchers());
  $("sketch-none").hidden = sketchers().length > 0;
  $("cmp-models").replaceChildren(el("legend", { textContent: "models" }), ...noise().map((m, i) =>
    el("label", {}, el("input", { type: "checkbox", value: m.name, checked: i < 3 }), " " + m.name)));
  for (const box of $("cmp-models").querySelectorAll("input")) box.addEventListener("change", compareAttributes);
  compareAttributes();
  onModelChange("gen");
  onModelChange("walk");
}

function pickModel(name) {
  const m = state.byName[name];
  if (!m || m.error) return;
  if (m.sketch) { $("sketch-model").value = name; showTab("sketch"); } else { $("gen-model").value = name; onModelChange("gen"); }
}

function onModelChange(panel) {
  const m = state.byName[$(`${panel}-model`).value];
  attributeControls($(`${panel}-attrs`), m ? m.vocab : {}, panel === "gen" ? () => generate() : null);
  if (panel === "gen" && m) showRun(m);
}

let runShown = 0;
async function showRun(m) {
  for (const li of $("model-list").children) li.classList.toggle("on", li.dataset.model === m.name);
  const box = $("run");
  const mine = ++runShown; // a slower answer for a model picked earlier must not overwrite this one
  box.replaceChildren(el("h2", { textContent: `MLflow run of ${m.name}` }), el("p", { className: "dim", textContent: "…" }));
  try {
    const run = await api(`/api/models/${encodeURIComponent(m.name)}/run`);
    if (mine !== runShown) return;
    if (!run.available) {
      box.replaceChildren(box.firstChild, el("p", { className: "dim", textContent: run.reason }));
      return;
    }
    const rows = (obj, keys) => keys.map((k) => el("tr", {}, el("td", { textContent: k }),
      el("td", { textContent: typeof obj[k] === "number" ? obj[k].toPrecision(4) : obj[k] })));
    const metricKeys = Object.keys(run.metrics).filter((k) => k.startsWith("eval_") || ["steps", "images_per_second", "seconds"].includes(k));
    const paramKeys = Object.keys(run.params).filter((k) => !k.startsWith("sketch.") && run.params[k] !== "None");
    box.replaceChildren(box.firstChild,
      el("p", {}, el("a", { href: run.link, target: "_blank", rel: "noopener", textContent: `run ${run.run_id.slice(0, 8)}` }),
        ` · ${run.status.toLowerCase()} · ${run.commit || "no commit"}`),
      el("h2", { textContent: "metrics" }), metricKeys.some((k) => k.startsWith("eval_")) ? "" :
        el("p", { className: "dim", textContent: "not evaluated yet (python -m pipeline evaluate " + m.name + ")" }),
      el("table", {}, ...rows(run.metrics, metricKeys)),
      el("details", {}, el("summary", { textContent: `params (${paramKeys.length})` }), el("table", {}, ...rows(run.params, paramKeys))));
  } catch (e) {
    box.replaceChildren(box.firstChild, el("p", { className: "dim", textContent: e.message }));
  }
}

// ---- faces

function faceImages(faces, onPick) {
  return faces.map((f) => {
    const img = el("img", { src: f.png, alt: `face ${f.index}`, title: describe(f), dataset: { index: String(f.index) } });
    if (onPick) img.addEventListener("click", () => onPick(f, img));
    return img;
  });
}

const describe = (f) => `face ${f.index}` + (Object.keys(f.requested || {}).length ?
  ": " + Object.entries(f.requested).map(([a, v]) => `${a}=${v}`).join(", ") : "") + " (click: download, walk, more like this)";

function setDownload(a, item) {
  a.href = item.png;
  a.download = item.filename;
  a.hidden = false;
}

// ---- Generate

async function generate() {
  const body = { model: $("gen-model").value, seed: Number($("gen-seed").value), count: Number($("gen-count").value),
                 attributes: attributesOf($("gen-attrs")) };
  if (!body.model) return showError("no model to draw from: train one first (python -m pipeline train dcgan)");
  await guarded($("gen-out"), async () => {
    const data = await api("/api/generate", body);
    state.lastGrid = data;
    $("gen-out").replaceChildren(...faceImages(data.faces, pickFace));
    $("gen-out").dataset.seed = String(data.seed);
    $("gen-command").textContent = data.command;
    setDownload($("gen-download"), data.grid);
    $("gen-actions").hidden = true;
  });
}

function pickFace(face, img) {
  for (const i of $("gen-out").children) i.classList.toggle("picked", i === img);
  state.picked = { seed: state.lastGrid.seed, index: face.index, count: state.lastGrid.count, model: state.lastGrid.model,
                   requested: face.requested };
  $("gen-picked").textContent = `face ${face.index} of ${state.lastGrid.count}, seed ${state.lastGrid.seed}`;
  setDownload($("gen-face-download"), face);
  $("gen-actions").hidden = false;
}

function walkFromPicked(which, mode) {
  const p = state.picked;
  if (!p) return;
  $("walk-model").value = p.model;
  onModelChange("walk");
  for (const [a, v] of Object.entries(p.requested || {})) {
    const sel = $("walk-attrs").querySelector(`select[data-attr="${a}"]`);
    if (sel) sel.value = v;
  }
  for (const [k, v] of [["seed", p.seed], ["index", p.index], ["count", p.count]]) $(`walk-${which}-${k}`).value = v;
  if (mode) $("walk-mode").value = mode;
  walkModeChanged();
  showTab("walk");
  if (which === "from") walk();
}

// ---- Side by side

function compareAttributes() {
  const chosen = [...$("cmp-models").querySelectorAll("input:checked")].map((b) => state.byName[b.value]);
  attributeControls($("cmp-attrs"), unionVocab(chosen));
}

async function compare() {
  const models = [...$("cmp-models").querySelectorAll("input:checked")].map((b) => b.value);
  if (models.length < 1) return showError("tick two or more models to compare");
  const body = { models, seed: Number($("cmp-seed").value), count: Number($("cmp-count").value), attributes: attributesOf($("cmp-attrs")) };
  await guarded($("cmp-out"), async () => {
    const data = await api("/api/compare", body);
    $("cmp-out").replaceChildren(...data.columns.map((c) => {
      const a = el("a", { textContent: "grid PNG" });
      setDownload(a, c.grid);
      return el("div", { className: "column", dataset: { model: c.model } },
        el("h3", { textContent: `${c.model}`, title: c.command }), el("div", { className: "dim", textContent: `step ${c.step}` }), a,
        el("div", { className: "faces" }, ...faceImages(c.faces, (f) => { const d = el("a", { download: f.filename, href: f.png }); d.click(); })));
    }));
  });
}

// ---- Walk

function walkModeChanged() {
  const near = $("walk-mode").value === "near";
  $("walk-to").hidden = near;
  $("walk-strength-label").hidden = !near;
}

async function walk() {
  const face = (w) => ({ seed: Number($(`walk-${w}-seed`).value), index: Number($(`walk-${w}-index`).value),
                         count: Number($(`walk-${w}-count`).value) });
  const body = { model: $("walk-model").value, mode: $("walk-mode").value, start: face("from"), end: face("to"),
                 steps: Number($("walk-steps").value), strength: Number($("walk-strength").value),
                 variation_seed: Math.floor(Math.random() * 1e6), attributes: attributesOf($("walk-attrs")) };
  if (body.mode !== "near") delete body.variation_seed;
  await guarded($("walk-out"), async () => {
    const data = await api("/api/walk", body);
    $("walk-out").replaceChildren(...faceImages(data.faces, (f) => { const d = el("a", { download: f.filename, href: f.png }); d.click(); }));
    setDownload($("walk-download"), data.strip);
  });
}

// ---- Sketch to face

const canvas = $("sketch-canvas");
const ctx = canvas.getContext("2d");

function clearCanvas() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function canvasPoint(ev) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}

let drawing = null;
canvas.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  canvas.setPointerCapture(ev.pointerId);
  drawing = canvasPoint(ev);
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.strokeStyle = "#000";
  ctx.lineWidth = Number($("sketch-pen").value) * (ev.pointerType === "pen" && ev.pressure ? 0.5 + ev.pressure : 1);
  ctx.beginPath();
  ctx.arc(drawing[0], drawing[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fillStyle = "#000";
  ctx.fill();
});
canvas.addEventListener("pointermove", (ev) => {
  if (!drawing) return;
  const p = canvasPoint(ev);
  ctx.beginPath();
  ctx.moveTo(...drawing);
  ctx.lineTo(...p);
  ctx.stroke();
  drawing = p;
});
const stop = () => { drawing = null; };
canvas.addEventListener("pointerup", stop);
canvas.addEventListener("pointercancel", stop);

$("sketch-file").addEventListener("change", () => {
  const file = $("sketch-file").files[0];
  if (!file) return;
  const img = new Image();
  img.onload = () => {
    clearCanvas();
    const s = Math.min(canvas.width / img.width, canvas.height / img.height);
    ctx.drawImage(img, (canvas.width - img.width * s) / 2, (canvas.height - img.height * s) / 2, img.width * s, img.height * s);
    URL.revokeObjectURL(img.src);
    sketchToFace();
  };
  img.onerror = () => showError(`${file.name} is not a picture this browser can read`);
  img.src = URL.createObjectURL(file);
});

async function sketchToFace() {
  const model = $("sketch-model").value;
  if (!model) return showError("no sketch2image model has been trained (python -m pipeline train sketch2image)");
  await guarded($("sketch-ink"), async () => {
    const data = await api("/api/sketch", { model, image: canvas.toDataURL("image/png") });
    $("sketch-seen").src = data.sketch;
    $("sketch-face").src = data.face.png;
    setDownload($("sketch-download"), data.face);
    $("sketch-ink").textContent = `${(data.ink * 100).toFixed(1)}% ink at ${state.byName[model].image_size}px · step ${data.step}`;
    $("sketch-ink").dataset.ink = String(data.ink);
  });
}

// ---- tabs and wiring

function showTab(name) {
  for (const b of $("tabs").children) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== `panel-${name}`;
  const sel = { generate: "gen-model", walk: "walk-model", sketch: "sketch-model" }[name];
  const m = sel && state.byName[$(sel).value];
  if (m) showRun(m); // the side column follows the panel's model
}

for (const b of $("tabs").children) b.addEventListener("click", () => showTab(b.dataset.tab));
$("gen-form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });
$("gen-model").addEventListener("change", () => { onModelChange("gen"); generate(); });
const whenValid = (input, fn) => input.addEventListener("change", () => { if (input.value !== "" && input.checkValidity()) fn(); });
whenValid($("gen-seed"), generate);
whenValid($("gen-count"), generate);
$("gen-dice").addEventListener("click", () => { $("gen-seed").value = Math.floor(Math.random() * 2 ** 31); generate(); });
$("gen-walk-from").addEventListener("click", () => walkFromPicked("from"));
$("gen-walk-to").addEventListener("click", () => walkFromPicked("to"));
$("gen-near").addEventListener("click", () => walkFromPicked("from", "near"));
$("cmp-form").addEventListener("submit", (e) => { e.preventDefault(); compare(); });
$("walk-form").addEventListener("submit", (e) => { e.preventDefault(); walk(); });
$("walk-model").addEventListener("change", () => { onModelChange("walk"); showRun(state.byName[$("walk-model").value]); });
$("sketch-model").addEventListener("change", () => showRun(state.byName[$("sketch-model").value]));
$("walk-mode").addEventListener("change", walkModeChanged);
$("sketch-form").addEventListener("submit", (e) => { e.preventDefault(); sketchToFace(); });
$("sketch-clear").addEventListener("click", clearCanvas);

clearCanvas();
loadModels().then(() => (noise().length ? generate() : null))
  .catch((e) => showError(e.message))
  .finally(() => { document.body.dataset.ready = "1"; });
