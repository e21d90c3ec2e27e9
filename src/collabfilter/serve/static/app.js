// The collabfilter page: search, neighbours, ratings -> recommendations, map, biases.
// Plain DOM code, no framework and nothing loaded from elsewhere. Text from the server
// is always set with textContent, never parsed as HTML.
"use strict";

const state = {
  scale: { low: 1, high: 5, step: 1 },
  ratings: new Map(), // key(item id) -> {item, title, rating}
};

const $ = (selector) => document.querySelector(selector);
const key = (id) => `${typeof id}:${id}`;

async function api(path, options = {}) {
  const response = await fetch(path, {
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

// ------------------------------------------------------------------ items and stars
function stars(entry) {
  const box = element("span", "stars");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `Rate ${entry.title}`);
  const { low, high } = state.scale;
  const step = state.scale.step || 1;
  const current = state.ratings.get(key(entry.item));
  for (let value = low; value <= high + 1e-9; value += step) {
    const button = element("button", "", "\u2605");
    button.type = "button";
    button.dataset.value = String(value);
    button.title = `${value}`;
    if (current && value <= current.rating + 1e-9) button.classList.add("on");
    button.addEventListener("click", () => rate(entry, value));
    box.append(button);
  }
  return box;
}

function itemRow(entry, meta, { rateable = true } = {}) {
  const li = element("li");
  li.dataset.item = String(entry.item);
  const left = element("div");
  const title = element("span", "title", entry.title);
  title.addEventListener("click", () => showNeighbours(entry));
  left.append(title);
  if (meta) left.append(element("div", "meta", meta));
  li.append(left);
  if (rateable) li.append(stars(entry));
  return li;
}

function refreshStars() {
  for (const list of ["#results", "#neighbours"]) {
    for (const li of document.querySelectorAll(`${list} li`)) {
      const old = li.querySelector(".stars");
      if (!old) continue;
      old.replaceWith(stars({ item: li._item, title: li.querySelector(".title").textContent }));
    }
  }
}

function fill(list, entries, meta) {
  list.replaceChildren();
  for (const entry of entries) {
    const li = itemRow(entry, meta(entry));
    li._item = entry.item;
    list.append(li);
  }
}

// ------------------------------------------------------------------ search and neighbours
let searchTimer = 0;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const query = $("#search").value.trim();
    if (!query) { $("#results").replaceChildren(); return; }
    try {
      const found = await api(`/items?q=${encodeURIComponent(query)}&n=8`);
      fill($("#results"), found.items, (e) => `${e.ratings} ratings`);
      if (!found.items.length) $("#results").append(element("li", "meta", "No movie matches."));
    } catch (error) {
      showError(error.message);
    }
  }, 180);
}

async function showNeighbours(entry) {
  try {
    // Neighbours with a handful of ratings are mostly noise: the page leaves them out.
    const path = `/items/${encodeURIComponent(entry.item)}/similar?n=10&min_ratings=20`;
    const similar = await api(path);
    $("#neighbours-of").textContent = similar.item.title;
    fill($("#neighbours"), similar.items,
      (e) => `similarity ${e.similarity.toFixed(2)} \u00b7 ${e.ratings} ratings`);
    $("#neighbours-box").hidden = false;
    highlightOnMap(entry.item);
  } catch (error) {
    showError(error.message);
  }
}

// ------------------------------------------------------------------ ratings and recommendations
function rate(entry, value) {
  state.ratings.set(key(entry.item), { item: entry.item, title: entry.title, rating: value });
  renderRated();
  refreshStars();
}

function renderRated() {
  const list = $("#rated");
  list.replaceChildren();
  for (const [id, entry] of state.ratings) {
    const li = itemRow(entry, `you: ${entry.rating}\u2605`, { rateable: false });
    const remove = element("button", "remove", "\u2715");
    remove.type = "button";
    remove.title = `Forget ${entry.title}`;
    remove.addEventListener("click", () => {
      state.ratings.delete(id);
      renderRated();
      refreshStars();
    });
    li.append(remove);
    list.append(li);
  }
  $("#no-ratings").hidden = state.ratings.size > 0;
  $("#recommend").disabled = state.ratings.size === 0;
}

async function recommend() {
  showError("");
  const ratings = [...state.ratings.values()].map((r) => ({ item: r.item, rating: r.rating }));
  try {
    const listed = await api("/recommendations?n=10", {
      method: "POST",
      body: JSON.stringify({ ratings }),
    });
    const list = $("#recommendations");
    list.replaceChildren();
    for (const entry of listed.items) {
      const li = itemRow(entry, `${listed.scores} ${entry.score.toFixed(2)}`, { rateable: false });
      if (entry.because) {
        const because = element("div", "because", "because you rated ");
        because.append(element("b", "", entry.because.title));
        because.append(` ${entry.because.rating}\u2605`);
        li.append(because);
      }
      list.append(li);
    }
  } catch (error) {
    showError(error.message);
  }
}

// ------------------------------------------------------------------ map
const SVG = "http://www.w3.org/2000/svg";
const map = { points: [], view: { x: 0, y: 0, k: 1 }, base: null, circles: new Map() };

async function loadMap() {
  const body = await api("/items/map?among=500");
  map.points = body.items;
  const box = $("#map");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Movies on the first two principal components");
  box.prepend(svg);
  const xs = body.items.map((p) => p.x);
  const ys = body.items.map((p) => p.y);
  map.base = { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) };
  const [px, py] = body.explained.map((v) => `${(100 * v).toFixed(1)}%`);
  for (const [text, cls] of [[`PC1 (${px} of variance)`, "x"], [`PC2 (${py})`, "y"]]) {
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("class", `axis-label ${cls}`);
    label.textContent = text;
    svg.append(label);
  }
  for (const point of body.items) {
    const circle = document.createElementNS(SVG, "circle");
    circle.setAttribute("r", String(2 + Math.log10(1 + point.ratings) * 1.6));
    circle.dataset.item = String(point.item);
    circle.addEventListener("mouseenter", (event) => showTip(event, point));
    circle.addEventListener("mousemove", (event) => showTip(event, point));
    circle.addEventListener("mouseleave", () => { $("#tooltip").hidden = true; });
    circle.addEventListener("click", () => showNeighbours(point));
    svg.append(circle);
    map.circles.set(key(point.item), circle);
  }
  layoutMap();
  svg.addEventListener("wheel", zoomMap, { passive: false });
  dragMap(svg);
  window.addEventListener("resize", layoutMap);
}

function layoutMap() {
  const svg = $("#map svg");
  if (!svg || !map.base) return;
  const { width, height } = svg.getBoundingClientRect();
  const pad = 24;
  const { x0, x1, y0, y1 } = map.base;
  const fit = Math.min((width - 2 * pad) / (x1 - x0 || 1), (height - 2 * pad) / (y1 - y0 || 1));
  const { x, y, k } = map.view;
  for (const point of map.points) {
    const circle = map.circles.get(key(point.item));
    const sx = (width / 2) + ((point.x - (x0 + x1) / 2) * fit * k) + x;
    const sy = (height / 2) - ((point.y - (y0 + y1) / 2) * fit * k) + y;
    circle.setAttribute("cx", sx.toFixed(1));
    circle.setAttribute("cy", sy.toFixed(1));
  }
  const [labelX, labelY] = svg.querySelectorAll(".axis-label");
  labelX.setAttribute("x", String(width - 190));
  labelX.setAttribute("y", String(height - 8));
  labelY.setAttribute("x", "8");
  labelY.setAttribute("y", "16");
}

function zoomMap(event) {
  event.preventDefault();
  const rect = event.currentTarget.getBoundingClientRect();
  const factor = Math.exp(-event.deltaY * 0.0015);
  const k = Math.min(40, Math.max(0.5, map.view.k * factor));
  const applied = k / map.view.k;
  // Keep the point under the cursor where it is.
  const cx = event.clientX - rect.left - rect.width / 2;
  const cy = event.clientY - rect.top - rect.height / 2;
  map.view.x = cx - (cx - map.view.x) * applied;
  map.view.y = cy - (cy - map.view.y) * applied;
  map.view.k = k;
  layoutMap();
}

function dragMap(svg) {
  let start = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.target.tagName === "circle") return;
    start = { x: event.clientX - map.view.x, y: event.clientY - map.view.y };
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (!start) return;
    map.view.x = event.clientX - start.x;
    map.view.y = event.clientY - start.y;
    layoutMap();
  });
  svg.addEventListener("pointerup", () => { start = null; });
}

function showTip(event, point) {
  const tip = $("#tooltip");
  const rect = $("#map").getBoundingClientRect();
  tip.textContent = `${point.title} \u00b7 ${point.ratings} ratings`;
  tip.hidden = false;
  tip.style.left = `${event.clientX - rect.left + 12}px`;
  tip.style.top = `${event.clientY - rect.top + 12}px`;
}

function highlightOnMap(item) {
  for (const circle of document.querySelectorAll("#map circle.hot")) circle.classList.remove("hot");
  const circle = map.circles.get(key(item));
  if (circle) circle.classList.add("hot");
}

// ------------------------------------------------------------------ bias table
const table = { rows: [], sortKey: "bias", ascending: false };

async function loadBiases() {
  const body = await api("/items/biases?among=500");
  table.rows = body.items;
  for (const th of document.querySelectorAll("#biases th")) {
    th.addEventListener("click", () => {
      const same = table.sortKey === th.dataset.key;
      table.ascending = same ? !table.ascending : th.dataset.type === "text";
      table.sortKey = th.dataset.key;
      renderBiases();
    });
  }
  renderBiases();
}

function renderBiases() {
  const { sortKey, ascending } = table;
  const sign = ascending ? 1 : -1;
  const rows = [...table.rows].sort((a, b) => {
    const left = a[sortKey];
    const right = b[sortKey];
    if (left === null || left === undefined) return 1;
    if (right === null || right === undefined) return -1;
    return typeof left === "string" ? sign * left.localeCompare(right) : sign * (left - right);
  });
  const body = $("#biases tbody");
  body.replaceChildren();
  for (const row of rows) {
    const tr = element("tr");
    const title = element("td", "", row.title);
    const bias = element("td", `number ${row.bias < 0 ? "bias-low" : "bias-high"}`,
      row.bias.toFixed(3));
    const mean = element("td", "number", row.mean_rating === null ? "" : row.mean_rating.toFixed(2));
    tr.append(title, bias, mean, element("td", "number", String(row.ratings)));
    body.append(tr);
  }
  for (const th of document.querySelectorAll("#biases th")) {
    th.classList.toggle("sorted-asc", th.dataset.key === sortKey && ascending);
    th.classList.toggle("sorted-desc", th.dataset.key === sortKey && !ascending);
  }
}

// ------------------------------------------------------------------ start
async function start() {
  $("#search").addEventListener("input", onSearch);
  $("#recommend").addEventListener("click", recommend);
  try {
    const health = await api("/health");
    const model = health.model;
    state.scale = model.scale;
    $("#model-info").textContent =
      `${model.class} \u00b7 ${model.users.toLocaleString()} users \u00b7 ` +
      `${model.items.toLocaleString()} items \u00b7 ` +
      `${model.training_ratings.toLocaleString()} training ratings`;
  } catch (error) {
    $("#model-info").textContent = `The service does not answer: ${error.message}`;
    return;
  }
  renderRated();
  await Promise.all([
    loadMap().catch((error) => { $("#map").textContent = error.message; }),
    loadBiases().catch((error) => { $("#biases-card .muted").textContent = error.message; }),
  ]);
  document.body.dataset.ready = "true";
}

start();
