// Shared helpers: fetching the JSON endpoints, building DOM and SVG, showing amounts.
// Amounts arrive as exact decimal strings and are shown as they are: never rounded, never
// turned into $0 when unknown. Numbers are parsed only to size bars.

const SVG_NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2456a6", "#d68910", "#2f7d4f", "#8e44ad", "#c0392b", "#16a085",
  "#7f8c8d", "#b7950b"];

export async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined));
  const text = query.toString();
  const response = await fetch(path + (text ? "?" + text : ""), { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.error || `HTTP ${response.status}`);
  }
  return body;
}

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function titled(node, text) {
  node.append(svg("title", { text }));
  return node;
}

// A summed cost as the CLI shows it: exact, ">= $known" when some calls are unpriced,
// "unknown" when none is priced. `cost` is a cost_json object (cost_usd, cost_known_usd,
// unpriced_calls).
export function money(cost) {
  if (!cost.unpriced_calls) return usd(cost.cost_usd);
  if (Number(cost.cost_known_usd) === 0) return "unknown";
  return "≥ " + usd(cost.cost_known_usd);
}

// One exact amount: "$0.00053", "-$0.0001", "unknown" for null.
export function usd(amount) {
  if (amount === null || amount === undefined) return "unknown";
  return amount.startsWith("-") ? "-$" + amount.slice(1) : "$" + amount;
}

export function ratio(value) {
  return value === null || value === undefined ? "n/a" : fixed(value, 2) + "x";
}

// A decimal string rounded to `places` the way the CLI's tables round (Python's Decimal:
// half to even), on the digits themselves: a float would turn 0.285 into 0.28499...
export function fixed(text, places) {
  const negative = text.startsWith("-");
  const [whole, fraction = ""] = text.replace("-", "").split(".");
  const digits = fraction.padEnd(places + 1, "0");
  let kept = BigInt(whole + digits.slice(0, places));
  const next = Number(digits[places]);
  const rest = /[1-9]/.test(digits.slice(places + 1));
  if (next > 5 || (next === 5 && (rest || kept % 2n === 1n))) kept += 1n;
  const padded = kept.toString().padStart(places + 1, "0");
  const shown = places ? `${padded.slice(0, -places)}.${padded.slice(-places)}` : padded;
  return (negative && kept !== 0n ? "-" : "") + shown;
}

export function tokens(count) {
  return Number(count).toLocaleString("en-US");
}

export function ms(value) {
  return value === null || value === undefined ? "–" : tokens(Math.round(value)) + " ms";
}

// "3", or "3 (1 failed, 2 refused)": budget refusals are not failures.
export function calls(row) {
  const notes = [];
  if (row.failed_calls) notes.push(`${row.failed_calls} failed`);
  if (row.refused_calls) notes.push(`${row.refused_calls} refused`);
  return notes.length ? `${row.calls} (${notes.join(", ")})` : String(row.calls);
}

export function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toISOString().replace("T", " ").slice(0, 19);
}

export function card(label, value, id) {
  return el("div", { class: "card" }, el("div", { class: "muted", text: label }),
    el("div", { class: "value", id, text: value }));
}

export function message(text, cls = "muted") {
  return el("p", { class: cls, text });
}
