"use strict";
// The label page: the collected frames in groups, a cursor, a selection, and keys that label.
// The server keeps every label; this page only shows them and sends what the keys say.

const CLASS_KEYS = "1234567890qwertyiop"; // u, a, g, b and x have other jobs
const SPECIAL_KEYS = { background: "b", rejected: "x" };
const REFRESH_MS = 5000; // new frames and the other labellers' labels

const client = localStorage.getItem("glassware-label-client") || Math.random().toString(36).slice(2);
localStorage.setItem("glassware-label-client", client);

let state = null; // the server's snapshot: choices, frames, problems, progress
let grouping = "guess"; // or "similar"
let order = []; // frame names in the order shown
let cursor = 0;
const selected = new Set();
let choiceOfKey = {};

const $ = (selector) => document.querySelector(selector);
const figureOf = (name) => document.querySelector(`figure[data-name="${name}"]`);

async function call(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function say(text) {
  $("#status").textContent = text;
}

function assignKeys(choices) {
  choiceOfKey = {};
  let next = 0;
  for (const choice of choices) {
    const key = SPECIAL_KEYS[choice] || CLASS_KEYS[next++];
    if (key) choiceOfKey[key] = choice; // past 19 classes, the rest have no key
  }
  $("#keys").replaceChildren(...Object.entries(choiceOfKey).map(([key, choice]) => {
    const item = document.createElement("li");
    item.innerHTML = `<kbd></kbd> `;
    item.firstChild.textContent = key;
    item.append(choice === "background" ? "background (nothing to pick up)"
      : choice === "rejected" ? "rejected (not glassware / bad frame)" : choice);
    return item;
  }));
}

function groups() {
  const byKey = new Map();
  for (const frame of state.frames) {
    const key = grouping === "guess" ? frame.top_class : frame.similar;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(frame);
  }
  const rank = (key) => grouping === "guess" ? (state.choices.indexOf(key) + 1 || 1e6) : key;
  return [...byKey.entries()].sort((a, b) => rank(a[0]) - rank(b[0]));
}

function render() {
  const sections = groups().map(([key, frames]) => {
    const section = document.createElement("section");
    const heading = document.createElement("h2");
    heading.textContent = (grouping === "guess" ? `model's guess: ${key}`
      : key < 0 ? "no fingerprint" : `look-alike group ${key + 1}`) + ` (${frames.length})`;
    const grid = document.createElement("div");
    grid.className = "grid";
    grid.append(...frames.map(tile));
    section.append(heading, grid);
    return section;
  });
  $("#groups").replaceChildren(...sections);
  order = [...document.querySelectorAll("figure")].map((f) => f.dataset.name);
  cursor = Math.min(cursor, Math.max(order.length - 1, 0));
  $("#grouping").textContent = grouping === "guess" ? "the model's guess" : "look-alike";
  const problems = $("#problems");
  problems.hidden = state.problems.length === 0;
  problems.querySelector("ul").replaceChildren(...state.problems.map((p) => {
    const item = document.createElement("li");
    item.textContent = `${p.path}: ${p.reason}`;
    return item;
  }));
  paint();
}

function tile(frame) {
  const figure = document.createElement("figure");
  figure.dataset.name = frame.name;
  const image = document.createElement("img");
  image.src = `/frames/${frame.name}.jpg`;
  image.loading = "lazy";
  image.alt = frame.name;
  const caption = document.createElement("figcaption");
  const guess = document.createElement("span");
  const confidence = frame.confidence == null ? "" : ` ${Math.round(100 * frame.confidence)} %`;
  // A sure answer kept as unknown was refused by the open-set score: unlike anything trained on.
  guess.textContent = `${frame.top_class}${confidence}${frame.refused ? " · novel" : ""}`;
  guess.title = `answered ${frame.raw_label}, kept as ${frame.kept}`;
  const label = document.createElement("span");
  label.className = "label";
  caption.append(guess, label);
  figure.append(image, caption);
  figure.addEventListener("click", () => {
    cursor = order.indexOf(frame.name);
    toggle(frame.name);
  });
  return figure;
}

function paint() {
  const labels = Object.fromEntries(state.frames.map((f) => [f.name, f.label]));
  document.querySelectorAll("figure").forEach((figure, i) => {
    const label = labels[figure.dataset.name];
    figure.dataset.label = label || "";
    figure.classList.toggle("cursor", i === cursor);
    figure.classList.toggle("selected", selected.has(figure.dataset.name));
    figure.classList.toggle("labelled", Boolean(label));
    const badge = figure.querySelector(".label");
    badge.textContent = label || "";
    badge.classList.toggle("rejected", label === "rejected");
  });
  const p = state.progress;
  $("#progress").textContent = `${p.labelled} of ${p.frames} frames labelled (${p.rejected} rejected)` +
    (selected.size ? `, ${selected.size} selected` : "");
  figureOf(order[cursor])?.scrollIntoView({ block: "nearest" });
}

async function refresh() {
  const shown = state && state.frames.map((f) => f.name).join();
  state = await call("/api/state");
  if (state.frames.map((f) => f.name).join() === shown) paint();
  else render();
}

function toggle(name) {
  if (!name) return;
  if (selected.has(name)) selected.delete(name);
  else selected.add(name);
  paint();
}

function move(step) {
  cursor = Math.max(0, Math.min(order.length - 1, cursor + step));
  paint();
}

function columns() {
  const figure = figureOf(order[cursor]);
  if (!figure) return 1;
  const row = [...figure.parentElement.children].filter((f) => f.offsetTop === figure.offsetTop);
  return Math.max(row.length, 1);
}

function selectGroup() {
  const grid = figureOf(order[cursor])?.parentElement;
  if (!grid) return;
  for (const figure of grid.children) {
    if (!figure.dataset.label) selected.add(figure.dataset.name);
  }
  paint();
}

async function label(choice) {
  const frames = selected.size ? [...selected] : [order[cursor]].filter(Boolean);
  if (!frames.length) return;
  const { changed } = await call("/api/label", { frames, label: choice, client });
  selected.clear();
  await refresh();
  const after = Math.max(...frames.map((name) => order.indexOf(name)));
  const next = order.findIndex((name, i) => i > after && !figureOf(name).dataset.label);
  cursor = next >= 0 ? next : Math.min(after + 1, order.length - 1);
  paint();
  say(`${choice}: ${changed} frame${changed === 1 ? "" : "s"}`);
}

async function undo() {
  const { restored } = await call("/api/undo", { client });
  await refresh();
  say(restored.length ? `undone: ${restored.length} frame${restored.length === 1 ? "" : "s"}` : "nothing to undo");
}

const ACTIONS = {
  ArrowLeft: () => move(-1),
  ArrowRight: () => move(1),
  ArrowUp: () => move(-columns()),
  ArrowDown: () => move(columns()),
  " ": () => toggle(order[cursor]),
  a: selectGroup,
  Escape: () => { selected.clear(); paint(); },
  u: undo,
  g: () => { grouping = grouping === "guess" ? "similar" : "guess"; render(); },
};

let busy = Promise.resolve(); // keys act one after another, each on what the one before left

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.metaKey || !state) return;
  const key = event.ctrlKey && event.key === "z" ? "u" : event.ctrlKey ? null : event.key;
  const action = ACTIONS[key] || (choiceOfKey[key] && (() => label(choiceOfKey[key])));
  if (!action) return;
  event.preventDefault();
  busy = busy.then(action).catch((error) => say(error.message));
});

(async function start() {
  try {
    state = await call("/api/state");
    assignKeys(state.choices);
    render();
    say("");
  } catch (error) {
    say(`cannot load the frames: ${error.message}`);
  }
  setInterval(() => refresh().catch((error) => say(error.message)), REFRESH_MS);
})();
