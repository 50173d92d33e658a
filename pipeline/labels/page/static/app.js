// boorugan labelling page: a grid of faces, each attribute a <select>; every change is PUT at once.
"use strict";
const $ = (id) => document.getElementById(id);
const COLOURS = {blonde: "#f2d675", brown: "#8b5a2b", black: "#222", blue: "#3b6fd8", pink: "#f4a6c8",
  purple: "#8e5ccf", green: "#3fa34d", red: "#d33", silver: "#c0c6cc", white: "#f8f8f8", orange: "#f39233",
  aqua: "#40d0d0", grey: "#888", yellow: "#f2e14c"};
let vocab = null, attrs = [], items = [], total = 0, focus = 0, active = 0;
const state = {filter: "all", attr: "", value: "", from: "", only: ""};
const undo = [];  // {face_id, values: the manual values before a change}

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  state.filter = h.get("filter") || "all"; state.attr = h.get("attr") || "";
  state.value = h.get("value") || ""; state.from = h.get("from") || "";
  state.only = h.get("edit") || "";
}
function writeHash() {
  const h = new URLSearchParams({filter: state.filter});
  if (state.from) h.set("from", state.from);
  if (state.attr) { h.set("attr", state.attr); h.set("value", state.value || "unknown"); }
  if (state.only) h.set("edit", state.only);
  history.replaceState(null, "", "#" + h);
}
function pretty(s) { return s.replace(/_/g, " "); }

let toastTimer = null;
function toast(text, error) {
  const t = $("toast");
  t.textContent = text; t.className = "show" + (error ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = ""; }, error ? 8000 : 1200);
}

async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json().catch(() => ({error: r.statusText}));
  if (!r.ok) throw new Error(body.error || JSON.stringify(body.detail || body));
  return body;
}

function setCounts(c) {
  $("counter").textContent = `${c.labelled} / ${c.faces} labelled`;
  $("counter").dataset.labelled = c.labelled;
}

function valueOptions(a) {
  const values = vocab.attributes[a];
  const sel = document.createElement("select");
  sel.dataset.attr = a;
  sel.append(new Option("unknown", "unknown"));
  values.forEach((v) => sel.append(new Option(pretty(v), v)));
  return sel;
}

function renderAttr(row, info) {
  const a = row.dataset.attr, sel = row.querySelector("select"), tag = row.querySelector(".tag");
  row.className = "attr " + info.source + (info.conflict ? " conflict" : "") + (attrs[active] === a ? " active" : "");
  sel.value = info.value;
  row.querySelector(".swatch").style.background = COLOURS[info.value] || "transparent";
  if (info.source === "manual") {
    tag.className = "tag " + (info.conflict ? "conflict" : "manual");
    tag.textContent = info.conflict ? "!" : "✓";
    tag.title = info.conflict ? `manual; the tagger says ${info.i2v} (p=${info.p})` : "manual" + (info.i2v ? ` (tagger: ${info.i2v}, p=${info.p})` : "");
  } else if (info.source === "i2v") {
    tag.className = "tag i2v"; tag.textContent = info.p.toFixed(2); tag.title = "the tagger's guess (probability); not saved yet";
  } else {
    tag.className = "tag none"; tag.textContent = info.p == null ? "" : info.p.toFixed(2);
    tag.title = info.p == null ? "no manual label, not tagged" : "tagger below threshold";
  }
}

function renderCard(card, face) {
  card.classList.toggle("labelled", face.labelled);
  card.querySelector(".badge").textContent = face.conflict ? "!" : face.labelled ? "✓" : "";
  card.querySelector(".badge").title = face.conflict ? "a manual value disagrees with a confident tagger" : "has a manual label";
  card.classList.toggle("conflict", face.conflict);
  card.querySelectorAll(".attr").forEach((row) => renderAttr(row, face.attrs[row.dataset.attr]));
}

function buildCard(face, i) {
  const card = document.createElement("section");
  card.className = "card"; card.dataset.faceId = face.face_id; card.dataset.i = i;
  const top = document.createElement("div"); top.className = "top";
  const img = document.createElement("img");
  img.className = "face"; img.loading = "lazy"; img.width = 128; img.height = 128; img.alt = face.face_id;
  img.src = `api/faces/${encodeURIComponent(face.face_id)}/image`;
  img.title = face.face_id;
  const badge = document.createElement("span"); badge.className = "badge";
  top.append(img, badge); card.append(top);
  for (const a of attrs) {
    const row = document.createElement("div"); row.className = "attr"; row.dataset.attr = a;
    const name = document.createElement("span"); name.className = "name"; name.textContent = pretty(a); name.title = a;
    const sw = document.createElement("span"); sw.className = "swatch";
    const sel = valueOptions(a);
    sel.addEventListener("change", () => save(i, a, sel.value, false));
    sel.addEventListener("focus", () => { setFocus(i, false); setActive(attrs.indexOf(a)); });
    const tag = document.createElement("span"); tag.className = "tag";
    row.append(name, sw, sel, tag); card.append(row);
  }
  card.addEventListener("mousedown", () => setFocus(i, false));
  renderCard(card, face);
  return card;
}

// anchor: {after: id} / {before: id} / {start: id} / {offset: n}; pages are anchored on faces, so
// faces labelled out of the filter do not make the next page skip the ones that moved up.
async function load(anchor) {
  anchor = anchor || (state.from ? {start: state.from} : {offset: 0});
  const q = new URLSearchParams({filter: state.filter, limit: vocab.page_size, ...anchor});
  if (state.attr) { q.set("attr", state.attr); q.set("value", state.value || "unknown"); }
  let data;
  try { data = await api("api/faces?" + q); } catch (e) { toast(e.message, true); return; }
  if (data.items.length === 0 && data.total > 0) return load({offset: Math.max(0, data.total - vocab.page_size)});
  state.from = data.offset > 0 && data.items.length ? data.items[0].face_id : ""; writeHash();
  items = data.items; total = data.total; setCounts(data.counts);
  const grid = $("grid"); grid.replaceChildren(...items.map(buildCard));
  $("empty").hidden = items.length > 0;
  const first = data.offset + 1, last = data.offset + items.length;
  $("range").textContent = total ? `${first}–${last} of ${total}` : "0 of 0";
  $("prev").disabled = data.offset === 0; $("next").disabled = last >= total;
  focus = Math.min(focus, Math.max(0, items.length - 1)); setFocus(focus, false);
}

function cards() { return $("grid").children; }
function setFocus(i, scroll = true) {
  if (!items.length) return;
  focus = Math.max(0, Math.min(items.length - 1, i));
  for (const c of cards()) c.classList.toggle("focused", +c.dataset.i === focus);
  if (scroll) cards()[focus].scrollIntoView({block: "nearest"});
  showZoom();
}
// z: the focused face large in a corner (the crops are small; details such as eye colour need it)
function showZoom() {
  const z = $("zoom");
  if (z.hidden || !items.length) return;
  z.querySelector("img").src = `api/faces/${encodeURIComponent(items[focus].face_id)}/image`;
}
// The key of value i of an attribute: 1..9, 0, then shift+1..shift+0 (written ⇧1) for the 11th..20th.
function keyOf(i) {
  const d = String((i + 1) % 10);
  return i < 10 ? d : i < 20 ? "⇧" + d : "";
}
function setActive(k) {
  if (state.only) k = attrs.indexOf(state.only);  // one-attribute mode: the keys always set that one
  active = (k + attrs.length) % attrs.length;
  document.querySelectorAll(".attr").forEach((r) => r.classList.toggle("active", r.dataset.attr === attrs[active]));
  renderPalette();
}

// The values of the active attribute with their keys; a click sets the focused face (then advances).
function renderPalette() {
  const a = attrs[active], binary = vocab.binary.includes(a), p = $("palette");
  const name = document.createElement("strong"); name.textContent = pretty(a);
  const buttons = vocab.attributes[a].map((v, i) => {
    const key = binary ? v[0] : keyOf(i);
    const b = document.createElement("button"); b.dataset.value = v;
    b.innerHTML = `<kbd></kbd><span class="swatch"></span><span></span>`;
    b.children[0].textContent = key || "·"; b.children[2].textContent = pretty(v);
    b.children[1].style.background = COLOURS[v] || ""; if (!COLOURS[v]) b.children[1].remove();
    b.title = key ? `${pretty(v)} (key ${key})` : `${pretty(v)} (mouse only)`;
    b.addEventListener("click", () => save(focus, a, v, true));
    return b;
  });
  const clear = document.createElement("button"); clear.innerHTML = "<kbd>x</kbd>clear";
  clear.title = "clear the manual value (x, Backspace)"; clear.addEventListener("click", () => save(focus, a, "unknown", true));
  const hint = document.createElement("span"); hint.className = "hint";
  hint.textContent = state.only ? "" : "[ ] other attribute · Enter accept tagger · ? help";
  p.replaceChildren(name, ...buttons, clear, hint);
}

function applyOnly() {
  document.body.classList.toggle("one", !!state.only);
  document.body.dataset.only = state.only;
  setActive(state.only ? attrs.indexOf(state.only) : active);
}

// PUT values for a face; redraw it where it is on this page. Records what to undo.
async function put(faceId, values, remember) {
  const i = items.findIndex((f) => f.face_id === faceId);
  const before = {};
  if (remember && i >= 0) for (const a in values) before[a] = items[i].attrs[a].manual || "unknown";
  const res = await api(`api/faces/${encodeURIComponent(faceId)}`, {
    method: "PUT", headers: {"Content-Type": "application/json"}, body: JSON.stringify({values})});
  if (remember && i >= 0) { undo.push({face_id: faceId, values: before}); if (undo.length > 500) undo.shift(); }
  if (i >= 0) { items[i] = res.face; renderCard(cards()[i], res.face); }
  setCounts(res.counts);
  return res;
}

async function undoLast() {
  const last = undo.pop();
  if (!last) { toast("nothing to undo"); return; }
  try {
    await put(last.face_id, last.values, false);
    const i = items.findIndex((f) => f.face_id === last.face_id);
    if (i >= 0) setFocus(i);
    toast(`undone on ${last.face_id}` + (i < 0 ? " (on another page)" : ""));
  } catch (e) { undo.push(last); toast(`not undone: ${e.message}`, true); }
}

async function save(i, a, value, byKey) {
  const face = items[i], card = cards()[i];
  try {
    await put(face.face_id, {[a]: value}, true);
    card.dataset.saved = (+card.dataset.saved || 0) + 1;
    toast(`saved ${pretty(a)} = ${pretty(value)}`);
    if (byKey && $("advance").checked) setFocus(i + 1);
  } catch (e) {
    renderCard(card, items[i]); toast(`not saved: ${e.message}`, true);
  }
}

async function acceptPredicted(i) {
  const face = items[i], values = {};
  for (const a of attrs) if (face.attrs[a].source === "i2v") values[a] = face.attrs[a].value;
  if (!Object.keys(values).length) { toast("nothing to accept: no tagger values left on this face"); setFocus(i + 1); return; }
  try {
    await put(face.face_id, values, true);
    toast(`accepted ${Object.keys(values).length} tagger value(s)`); setFocus(i + 1);
  } catch (e) { toast(`not saved: ${e.message}`, true); }
}

function columns() {
  const c = cards();
  if (c.length < 2) return 1;
  const top = c[0].offsetTop; let n = 0;
  while (n < c.length && c[n].offsetTop === top) n++;
  return n;
}

function page(delta) {
  if (!items.length || (delta > 0 ? $("next") : $("prev")).disabled) return;
  const anchor = delta > 0 ? {after: items[items.length - 1].face_id} : {before: items[0].face_id};
  focus = 0; load(anchor).then(() => window.scrollTo(0, 0));
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const inSelect = e.target.tagName === "SELECT";
  const digit = /^Digit[0-9]$/.test(e.code) ? parseInt(e.code.slice(5), 10) : null;  // layout-independent
  if (e.key === "?") { $("help").hidden = !$("help").hidden; return e.preventDefault(); }
  if (e.key === "Escape") { $("help").hidden = true; if (inSelect) e.target.blur(); return; }
  if (inSelect && !e.target.closest(".card")) return;  // header selects keep their own keys
  if (inSelect && ["ArrowUp", "ArrowDown", "Enter", " "].includes(e.key)) return;  // let the list work
  if (inSelect) e.target.blur();
  const a = attrs[active], values = vocab.attributes[a], binary = vocab.binary.includes(a);
  const cols = columns();
  const moves = {ArrowLeft: -1, h: -1, ArrowRight: 1, l: 1, ArrowUp: -cols, k: -cols, ArrowDown: cols, j: cols};
  if (e.key in moves) setFocus(focus + moves[e.key]);
  else if (e.key === "]" || (e.key === "Tab" && !e.shiftKey)) setActive(active + 1);
  else if (e.key === "[" || (e.key === "Tab" && e.shiftKey)) setActive(active - 1);
  else if (e.key === "PageDown") page(1);
  else if (e.key === "PageUp") page(-1);
  else if (e.key === "Enter") acceptPredicted(focus);
  else if (e.key === "u") undoLast();
  else if (e.key === "z") { $("zoom").hidden = !$("zoom").hidden; showZoom(); }
  else if (e.key === "x" || e.key === "Backspace" || e.key === "Delete") save(focus, a, "unknown", true);
  else if (binary && (e.key === "y" || e.key === "n")) save(focus, a, e.key === "y" ? "yes" : "no", true);
  else if (!binary && digit !== null) {
    const i = (digit + 9) % 10 + (e.shiftKey ? 10 : 0);
    if (values[i]) save(focus, a, values[i], true); else toast(`${pretty(a)} has no value ${keyOf(i)}`);
  } else return;
  e.preventDefault();
});

function fillValueFilter() {
  const sel = $("value");
  sel.hidden = !state.attr;
  if (!state.attr) return;
  sel.replaceChildren(new Option("unknown", "unknown"), ...vocab.attributes[state.attr].map((v) => new Option(pretty(v), v)));
  sel.value = state.value || "unknown";
}

async function start() {
  try { vocab = await api("api/vocabulary"); } catch (e) { toast(e.message, true); return; }
  attrs = Object.keys(vocab.attributes);
  readHash();
  for (const [k, text] of Object.entries(vocab.filters)) {
    const o = new Option(k.replace("_", " "), k); o.title = text; $("filter").append(o);
  }
  for (const a of attrs) { $("attr").append(new Option(pretty(a), a)); $("only").append(new Option(pretty(a), a)); }
  $("only").value = state.only;
  $("only").addEventListener("change", () => { state.only = $("only").value; writeHash(); applyOnly(); $("only").blur(); });
  $("filter").value = state.filter; $("attr").value = state.attr; fillValueFilter();
  if (!vocab.tagged) {
    $("notice").hidden = false;
    $("notice").textContent = "No tagger predictions (the tag stage is off or has not run): every value starts unknown. " +
      "Run `python -m pipeline tag -S tag.enabled=true` for i2v guesses to confirm instead of typing.";
  }
  $("filter").addEventListener("change", () => { state.filter = $("filter").value; state.from = ""; focus = 0; load(); $("filter").blur(); });
  $("attr").addEventListener("change", () => { state.attr = $("attr").value; state.value = ""; state.from = ""; fillValueFilter(); load(); });
  $("value").addEventListener("change", () => { state.value = $("value").value; state.from = ""; load(); });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  $("helpbtn").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
  $("advance").checked = localStorage.getItem("boorugan.advance") !== "0";
  $("advance").addEventListener("change", () => localStorage.setItem("boorugan.advance", $("advance").checked ? "1" : "0"));
  await load();
  applyOnly();
  document.body.dataset.ready = "1";
}
start();
