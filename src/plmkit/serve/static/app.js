// plmkit serve: the page. Plain JS and SVG, nothing fetched from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let models = [];
let current = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem("plm-api-key");
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function post(endpoint, body) {
  const response = await fetch(`/v1/models/${encodeURIComponent(current.id)}/${endpoint}`,
    { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || {};
    throw new Error(`${response.status}: ${error.message || "request failed"}` +
                    (error.field ? ` (${error.field})` : ""));
  }
  showError("");
  return data;
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

function bars(container, rows) {
  container.textContent = "";
  const top = Math.max(...rows.map((r) => r.score), 1e-9);
  for (const r of rows) {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.label = r.label;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = r.label;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.dataset.token = r.label;
    bar.dataset.score = r.score.toFixed(4);
    bar.style.width = `${Math.round(300 * r.score / top)}px`;
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = r.score.toFixed(3);
    row.append(label, bar, value);
    container.append(row);
  }
}

// ------------------------------------------------------------------------------ fill-mask
let fillTimer = null;
function fillMaskSoon() {
  clearTimeout(fillTimer);
  fillTimer = setTimeout(fillMask, 250);
}
async function fillMask() {
  const text = $("fill-input").value;
  const out = $("fill-results");
  if (!text.includes("[MASK]")) { out.textContent = "(no [MASK] yet)"; return; }
  try {
    const data = await post("fill-mask", { text, top_k: 5 });
    if ($("fill-input").value !== text) return;  // the user typed on: a newer answer is coming
    out.textContent = "";
    out.dataset.text = text;
    data.masks.forEach((predictions, index) => {
      const block = document.createElement("div");
      block.className = "mask";
      block.dataset.mask = index;
      out.append(block);
      bars(block, predictions.map((p) => ({ label: p.token, score: p.score })));
    });
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------ classify
async function classify() {
  const pair = $("cls-pair").value.trim();
  const body = { texts: [$("cls-input").value] };
  if (pair) body.text_pairs = [pair];
  try {
    const [result] = (await post("classify", body)).results;
    const scores = Object.entries(result.scores || { [result.label]: result.score });
    bars($("cls-output"), scores.map(([label, score]) => ({ label, score }))
      .sort((a, b) => b.score - a.score));
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------ NER
async function ner() {
  const text = $("ner-input").value;
  try {
    const [result] = (await post("ner", { texts: [text] })).results;
    const out = $("ner-output");
    let html = "", at = 0;
    const entities = (result.entities || []).filter((e) => e.char_start !== undefined)
      .sort((a, b) => a.char_start - b.char_start);
    for (const e of entities) {
      html += escapeHtml(text.slice(at, e.char_start));
      html += `<mark class="entity" data-type="${escapeHtml(e.type)}" title="${(e.score || 0).toFixed(3)}">` +
              `${escapeHtml(text.slice(e.char_start, e.char_end))}<sup>${escapeHtml(e.type)}</sup></mark>`;
      at = e.char_end;
    }
    out.innerHTML = html + escapeHtml(text.slice(at));
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------ QA
async function qa() {
  const context = $("qa-context").value;
  try {
    const result = await post("qa", { question: $("qa-question").value, context });
    $("qa-score").textContent = result.answer ? `answer: "${result.answer}"  score ${result.score.toFixed(3)}`
                                              : "no answer";
    const out = $("qa-output");
    if (result.answer && result.start !== null && result.start !== undefined) {
      out.innerHTML = escapeHtml(context.slice(0, result.start)) +
        `<mark class="answer">${escapeHtml(context.slice(result.start, result.end))}</mark>` +
        escapeHtml(context.slice(result.end));
    } else {
      out.textContent = context;
    }
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------ generate
async function generate() {
  const out = $("gen-output");
  out.textContent = "";
  const body = { prompt: $("gen-prompt").value, stream: true,
                 temperature: parseFloat($("gen-temperature").value),
                 top_p: parseFloat($("gen-top-p").value),
                 max_new_tokens: parseInt($("gen-max").value, 10) };
  const response = await fetch(`/v1/models/${encodeURIComponent(current.id)}/generate`,
    { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    showError(`${response.status}: ${(data.error || {}).message || "request failed"}`);
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (event.startsWith("event: done")) { out.dataset.done = "1"; return; }
      if (event.startsWith("event: error")) { showError(event.split("data: ")[1]); return; }
      if (event.startsWith("data: ")) {
        const span = document.createElement("span");
        span.className = "token";
        span.textContent = JSON.parse(event.slice(6)).text;
        out.append(span);
      }
    }
  }
}

// ------------------------------------------------------------------------------ translate
async function translate() {
  try {
    const data = await post("translate", { texts: [$("tr-input").value],
                                           beam_size: parseInt($("tr-beam").value, 10) });
    $("tr-output").textContent = data.translations[0];
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------ embed
async function embed() {
  const texts = $("emb-input").value.split("\n").map((t) => t.trim()).filter(Boolean);
  try {
    const vectors = (await post("embed", { texts })).embeddings;
    const table = $("emb-output");
    table.textContent = "";
    vectors.forEach((a, i) => {
      const row = table.insertRow();
      row.insertCell().textContent = texts[i].slice(0, 40);
      vectors.forEach((b) => {
        row.insertCell().textContent = a.reduce((s, x, k) => s + x * b[k], 0).toFixed(3);
      });
    });
  } catch (e) { showError(e.message); }
}

// ------------------------------------------------------------------------------ attention
let attention = null;
async function loadAttention() {
  let answer;
  try {
    answer = await post("attention", { text: $("att-input").value });
  } catch (e) { showError(e.message); return; }
  // one view per kind of attention (BERT and GPT: self-attention; the Transformer: cross-,
  // encoder and decoder attention)
  attention = answer.views;
  const kinds = $("att-kind");
  kinds.textContent = "";
  attention.forEach((view, i) => kinds.append(new Option(view.name, String(i))));
  kinds.parentElement.hidden = attention.length < 2;
  $("att-translation").textContent = answer.translation ? `translation: ${answer.translation}` : "";
  fillLayersAndHeads();
}

function currentView() { return attention[parseInt($("att-kind").value || "0", 10)]; }

function fillLayersAndHeads() {
  const view = currentView();
  const layers = view.attentions.length, heads = view.attentions[0].length;
  const fill = (select, count, all) => {
    select.textContent = "";
    if (all) select.append(new Option("all (grid)", "all"));
    for (let i = 0; i < count; i++) select.append(new Option(String(i), String(i)));
  };
  fill($("att-layer"), layers, false);
  fill($("att-head"), heads, true);
  $("att-head").value = "0";
  drawAttention();
}

function headView(weights, queries, keys, width, rowHeight, labels) {
  // bertviz's head view: tokens in two columns, a line from each query (left) to each key
  // (right), as thick and as opaque as the weight.
  const height = Math.max(queries.length, keys.length) * rowHeight + 10;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const left = labels ? 90 : 8, right = width - (labels ? 90 : 8);
  const y = (i) => 10 + i * rowHeight + rowHeight / 2;
  weights.forEach((row, q) => row.forEach((w, k) => {
    if (w < 0.02) return;
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("x1", left); line.setAttribute("y1", y(q));
    line.setAttribute("x2", right); line.setAttribute("y2", y(k));
    line.setAttribute("stroke-width", (labels ? 4 : 2) * w);
    line.setAttribute("stroke-opacity", Math.min(1, 0.2 + w));
    line.setAttribute("class", "att-line");
    line.dataset.from = q; line.dataset.to = k; line.dataset.weight = w.toFixed(4);
    svg.append(line);
  }));
  if (labels) {
    const columns = [[queries, left - 6, "end", "query"], [keys, right + 6, "start", "key"]];
    for (const [tokens, x, anchor, side] of columns) {
      tokens.forEach((token, i) => {
        const text = document.createElementNS(SVG, "text");
        text.setAttribute("x", x); text.setAttribute("y", y(i) + 4);
        text.setAttribute("text-anchor", anchor);
        text.setAttribute("class", "att-token");
        text.dataset.index = i; text.dataset.side = side;
        text.textContent = token;
        text.addEventListener("mouseenter", () => focusToken(svg, i, side));
        text.addEventListener("mouseleave", () => focusToken(svg, null, side));
        svg.append(text);
      });
    }
  }
  return svg;
}

function focusToken(svg, index, side) {
  const attr = side === "query" ? "from" : "to";
  svg.querySelectorAll(".att-line").forEach((line) => {
    line.classList.toggle("dim", index !== null && line.dataset[attr] !== String(index));
  });
  svg.querySelectorAll(".att-token").forEach((t) => {
    t.classList.toggle("focus", index !== null && t.dataset.index === String(index)
                                && t.dataset.side === side);
  });
}

function drawAttention() {
  if (!attention) return;
  const view = $("att-view");
  view.textContent = "";
  const shown = currentView();
  const layer = shown.attentions[parseInt($("att-layer").value, 10)];
  const head = $("att-head").value;
  if (head === "all") {
    const grid = document.createElement("div");
    grid.className = "grid";
    layer.forEach((weights, h) => {
      const figure = document.createElement("figure");
      figure.className = "att-mini";
      figure.dataset.head = h;
      figure.append(headView(weights, shown.queries, shown.keys, 140, 6, false));
      const caption = document.createElement("figcaption");
      caption.textContent = `head ${h}`;
      figure.append(caption);
      figure.addEventListener("click", () => { $("att-head").value = String(h); drawAttention(); });
      grid.append(figure);
    });
    view.append(grid);
  } else {
    view.append(headView(layer[parseInt(head, 10)], shown.queries, shown.keys, 420, 18, true));
  }
}

// ------------------------------------------------------------------------------ tabs
function showTab(endpoint) {
  document.querySelectorAll("nav button").forEach((b) =>
    b.classList.toggle("active", b.dataset.endpoint === endpoint));
  document.querySelectorAll("main section").forEach((s) => { s.hidden = s.dataset.endpoint !== endpoint; });
  if (endpoint === "fill-mask") fillMask();
}

function chooseModel(id) {
  current = models.find((m) => m.id === id);
  $("kind").textContent = current ? current.kind : "";
  const tabs = $("tabs");
  tabs.textContent = "";
  for (const endpoint of current.endpoints) {
    const button = document.createElement("button");
    button.textContent = endpoint;
    button.dataset.endpoint = endpoint;
    button.addEventListener("click", () => showTab(endpoint));
    tabs.append(button);
  }
  const wanted = new URLSearchParams(location.search).get("tab");
  showTab(current.endpoints.includes(wanted) ? wanted : current.endpoints[0]);
}

async function start() {
  $("api-key").value = localStorage.getItem("plm-api-key") || "";
  $("api-key").addEventListener("change", () => { localStorage.setItem("plm-api-key", $("api-key").value); start(); });
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) { showError(`${response.status}: give the server's API key above`); return; }
  models = (await response.json()).data;
  const select = $("model");
  select.textContent = "";
  for (const m of models) select.append(new Option(`${m.id} (${m.kind})`, m.id));
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && models.some((m) => m.id === wanted)) select.value = wanted;
  select.onchange = () => chooseModel(select.value);
  chooseModel(select.value);
}

$("fill-input").addEventListener("input", fillMaskSoon);
$("cls-run").addEventListener("click", classify);
$("ner-run").addEventListener("click", ner);
$("qa-run").addEventListener("click", qa);
$("gen-run").addEventListener("click", () => generate().catch((e) => showError(e.message)));
$("tr-run").addEventListener("click", translate);
$("emb-run").addEventListener("click", embed);
$("att-run").addEventListener("click", loadAttention);
$("att-layer").addEventListener("change", drawAttention);
$("att-kind").addEventListener("change", fillLayersAndHeads);
$("att-head").addEventListener("change", drawAttention);
start();
