// Spend over time: the totals, then one stacked bar chart per dimension (app, agent,
// endpoint, hardware), each bar a time bucket of /api/timeline (an `audit summary` each).
import { filtersOnly, go } from "./nav.js";
import { PALETTE, api, calls, card, el, money, svg, titled, tokens, when } from "./util.js";

const DIMENSIONS = ["app", "agent", "endpoint", "hardware"];
const MEASURES = {
  cost: { label: "known cost (USD)", of: (row) => Number(row.cost_known_usd), show: money },
  tokens: { label: "tokens", of: (row) => row.tokens.total, show: (row) => tokens(row.tokens.total) },
  calls: { label: "calls", of: (row) => row.calls, show: calls },
};
const TOP = 6;
const WIDTH = 560;
const HEIGHT = 190;
const PAD = { left: 8, right: 8, top: 18, bottom: 22 };

export async function renderSpend(_arg, params) {
  const filters = filtersOnly();
  const measure = MEASURES[params.get("measure")] ? params.get("measure") : "cost";
  const overall = await api("/api/summary", { ...filters, by: "app" });
  const total = overall.total;
  const picker = el("select", { id: "measure" },
    Object.entries(MEASURES).map(([key, m]) => el("option", { value: key, selected: key === measure, text: m.label })));
  picker.addEventListener("change", () => go("spend", "", { measure: picker.value }));
  const charts = await Promise.all(DIMENSIONS.map((by) => chart(by, filters, MEASURES[measure])));
  return el("div", {},
    el("div", { class: "cards" },
      card("total cost", money(total), "total-cost"),
      card("calls", calls(total), "total-calls"),
      card("queries", String(total.queries), "total-queries"),
      card("tokens", tokens(total.tokens.total), "total-tokens")),
    el("div", { class: "toolbar" }, el("label", {}, "bars show ", picker)),
    el("div", { class: "charts" }, charts));
}

async function chart(by, filters, measure) {
  const [timeline, groups] = await Promise.all([
    api("/api/timeline", { ...filters, by }),
    api("/api/summary", { ...filters, by }),
  ]);
  const keys = groups.groups.map((g) => g.key);
  const shown = keys.slice(0, TOP);
  const colour = (key) => (shown.includes(key) ? PALETTE[shown.indexOf(key)] : PALETTE[TOP]);
  const legend = groups.groups.slice(0, TOP).map((g) => el("span", { class: "legend-item", "data-key": g.key ?? "" },
    el("span", { class: "swatch", "data-colour": colour(g.key) }),
    `${label(by, g.key)}: ${measure.show(g)}`));
  if (keys.length > TOP) legend.push(el("span", { class: "legend-item muted", text: `+${keys.length - TOP} more (grey)` }));
  const section = el("section", { class: "chart", "data-by": by },
    el("h2", { text: `by ${by}` }), bars(timeline, measure, colour, by), el("div", { class: "legend" }, legend));
  // Swatch colours are SVG-free boxes: set them as properties (the CSP forbids inline styles).
  section.querySelectorAll(".swatch").forEach((s) => { s.style.background = s.dataset.colour; });
  return section;
}

function label(by, key) {
  if (key === null) return "(outside any query)";
  if (key === "") return by === "agent" ? "(no agent)" : "(none)";
  return key;
}

function bars(timeline, measure, colour, by) {
  const buckets = timeline.buckets;
  const plot = svg("svg", { width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img" });
  if (!buckets.length) {
    plot.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", text: "no calls" }));
    return plot;
  }
  const totals = buckets.map((b) => b.summary.groups.reduce((sum, g) => sum + measure.of(g), 0));
  const top = Math.max(...totals) || 1;
  const inner = { w: WIDTH - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  const step = inner.w / buckets.length;
  plot.append(svg("line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: PAD.top + inner.h, y2: PAD.top + inner.h }));
  buckets.forEach((bucket, index) => {
    let y = PAD.top + inner.h;
    const x = PAD.left + index * step + step * 0.1;
    for (const group of bucket.summary.groups) {
      const height = (measure.of(group) / top) * inner.h;
      if (height <= 0) continue;
      y -= height;
      const rect = svg("rect", { class: "segment", x, y, width: Math.max(1, step * 0.8), height, fill: colour(group.key) });
      plot.append(titled(rect, `${when(bucket.start)} – ${when(bucket.end)} UTC\n${label(by, group.key)}: ` +
        `${money(group)}, ${calls(group)} calls, ${tokens(group.tokens.total)} tokens`));
    }
  });
  const peak = buckets[totals.indexOf(Math.max(...totals))].summary.total;
  plot.append(svg("text", { x: PAD.left, y: 12, text: `peak bucket ${measure.show(peak)} · ${timeline.width_s} s per bar` }));
  plot.append(svg("text", { x: PAD.left, y: HEIGHT - 6, text: when(buckets[0].start) }));
  plot.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end", text: when(buckets.at(-1).end) }));
  return plot;
}

