// One query (`audit show ID --json`): its totals, its calls as a waterfall -- one lane per
// agent path, one bar per HTTP attempt (TTFT darker, then the rest of the attempt), retries
// outlined, budget refusals as a diamond (never sent) -- and the calls as a table.
import { api, calls, card, el, message, money, ms, svg, titled, tokens, usd, when } from "./util.js";

const LABEL_W = 190;
const WIDTH = 1000;
const ROW_H = 22;
const AXIS_H = 24;
const FAILED = ["error", "cancelled"];
const LABEL_CHAR_W = 6;

export async function renderQuery(id) {
  const shown = await api(`/api/queries/${encodeURIComponent(id)}`);
  const q = shown.query;
  return el("div", {},
    el("h2", {}, `query ${q.id} `, el("span", { class: `status-${q.status}`, text: q.status })),
    el("p", { class: "muted", text: `app ${q.app || "–"} · user ${q.user || "–"} · thread ${q.thread_id || "–"} · started ${when(q.started_at)} UTC` +
      (q.error ? ` · error: ${q.error}` : "") }),
    el("div", { class: "cards" },
      card("cost", money(q), "q-cost"), card("calls", calls(q), "q-calls"),
      card("tokens", tokens(q.tokens.total), "q-tokens"), card("first token", ms(q.first_token_ms), "q-ttft"),
      card("latency", ms(q.latency_ms), "q-latency")),
    el("div", { class: "key" }, el("span", { text: "▮ dark: time to first token, light: the rest of the attempt" }),
      el("span", { text: "outlined: a retry" }), el("span", { text: "red: failed" }), el("span", { text: "◆ refused by the budget (never sent)" })),
    shown.calls.length ? waterfall(q, shown.calls) : message("no calls recorded"),
    callTable(shown.calls));
}

function lanes(rows) {
  const byLane = new Map();
  for (const call of rows) {
    const lane = call.agent_path || "(no agent)";
    if (!byLane.has(lane)) byLane.set(lane, []);
    byLane.get(lane).push(call);
  }
  return byLane;
}

function kinds(call) {
  const classes = ["call"];
  if (call.attempt > 1) classes.push("retry");
  if (call.status === "budget_denied") classes.push("refused");
  else if (FAILED.includes(call.status) || call.status === "cut_at_budget") classes.push("failed");
  return classes.join(" ");
}

function describe(call) {
  const where = [call.hardware, call.precision].filter(Boolean).join(" ");
  const status = call.status === "budget_denied" ? "refused by the budget (never sent)" :
    call.status + (call.error_kind ? `: ${call.error_kind}` : "") + (call.http_status && call.status !== "ok" ? ` (HTTP ${call.http_status})` : "");
  return `${call.agent_path || "(no agent)"} · ${call.endpoint} (${where || "hardware unknown"}) · attempt ${call.attempt}\n` +
    `${status}\nTTFT ${ms(call.ttft_ms)} · total ${ms(call.latency_ms)}\n` +
    `tokens ${tokens(call.input_uncached)} uncached / ${tokens(call.input_cached)} cached / ${tokens(call.output)} output` +
    ` (${call.usage_source})\ncost ${usd(call.cost_usd)}`;
}

function waterfall(q, rows) {
  const start = (call) => Date.parse(call.started_at);
  const t0 = Math.min(Date.parse(q.started_at), ...rows.map(start));
  const end = Math.max(...rows.map((c) => start(c) + (c.latency_ms || 0)), q.finished_at ? Date.parse(q.finished_at) : 0);
  const span = Math.max(1, end - t0);
  const scale = (WIDTH - LABEL_W - 60) / span;
  const grouped = lanes(rows);
  // Calls that overlap in one lane (parallel attempts) get sub-rows.
  const placed = [];
  const laneRows = [];
  let row = 0;
  for (const [lane, laneCalls] of grouped) {
    const ends = [];
    for (const call of laneCalls) {
      // In pixels: a bar and its label must not cover the next call of the lane.
      const x = (start(call) - t0) * scale;
      let sub = ends.findIndex((e) => e <= x);
      if (sub < 0) { sub = ends.length; ends.push(0); }
      ends[sub] = x + barWidth(call, scale) + 10 + LABEL_CHAR_W * label(call).length;
      placed.push({ call, row: row + sub });
    }
    laneRows.push({ lane, row });
    row += Math.max(1, ends.length);
  }
  const height = AXIS_H + row * ROW_H + 8;
  const plot = svg("svg", { id: "waterfall", width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, role: "img" });
  axis(plot, span, scale, height);
  for (const { lane, row: first } of laneRows) {
    const y = AXIS_H + first * ROW_H;
    plot.append(svg("line", { class: "lane-line", x1: 0, x2: WIDTH, y1: y, y2: y }));
    plot.append(titled(svg("text", { class: "lane", "data-lane": lane, x: 4, y: y + 15, text: lane.length > 28 ? "…" + lane.slice(-27) : lane }), lane));
  }
  for (const { call, row: r } of placed) plot.append(bar(call, LABEL_W + (start(call) - t0) * scale, AXIS_H + r * ROW_H + 3, scale));
  return plot;
}

function axis(plot, span, scale, height) {
  for (let i = 0; i <= 4; i += 1) {
    const x = LABEL_W + (span * i / 4) * scale;
    plot.append(svg("line", { class: "axis", x1: x, x2: x, y1: AXIS_H - 4, y2: height }));
    plot.append(svg("text", { x, y: 14, "text-anchor": i ? "middle" : "start", text: ms(span * i / 4) }));
  }
}

function barWidth(call, scale) {
  return call.status === "budget_denied" ? 8 : Math.max(2, (call.latency_ms || 0) * scale);
}

function label(call) {
  if (call.status === "budget_denied") return "refused";
  const note = call.attempt > 1 ? `retry ${call.attempt} · ` : "";
  const outcome = call.status === "ok" ? "" : ` · ${call.status}`;
  return `${note}${ms(call.ttft_ms)} / ${ms(call.latency_ms)}${outcome}`;
}

function bar(call, x, y, scale) {
  const group = svg("g", { class: kinds(call), "data-call-id": call.id, "data-attempt": call.attempt, "data-status": call.status });
  const width = barWidth(call, scale);
  const text = label(call);
  // The label goes after the bar, or before it when it would leave the chart.
  const after = x + width + 4 + LABEL_CHAR_W * text.length < WIDTH;
  const textAt = after ? { x: x + width + 4 } : { x: x - 10, "text-anchor": "end" };
  if (call.status === "budget_denied") {
    group.append(svg("path", { d: `M${x} ${y} l7 8 l-7 8 l-7 -8 z` }));
  } else {
    group.append(svg("rect", { class: "total", x, y, width, height: ROW_H - 6, rx: 2 }));
    if (call.ttft_ms !== null && call.ttft_ms !== undefined) {
      group.append(svg("rect", { class: "ttft", x, y, width: Math.max(1, call.ttft_ms * scale), height: ROW_H - 6, rx: 2 }));
    }
  }
  group.append(svg("text", { ...textAt, y: y + 12, text }));
  return titled(group, describe(call));
}

function callTable(rows) {
  const head = ["#", "agent", "endpoint", "attempt", "status", "TTFT", "total", "tokens unc / cached / out", "cost"];
  return el("table", { id: "calls-table" },
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i >= 5 ? "num" : "", text: h })))),
    el("tbody", {}, rows.map((c, i) => el("tr", { "data-call-id": c.id },
      el("td", { text: String(i + 1) }), el("td", { text: c.agent_path || "(no agent)" }),
      el("td", { text: `${c.endpoint} (${[c.hardware, c.precision].filter(Boolean).join(" ") || "?"})` }),
      el("td", { text: String(c.attempt) }),
      el("td", { class: `status-${c.status}`, text: c.status === "budget_denied" ? "refused by the budget" : c.status + (c.error_kind ? `: ${c.error_kind}` : "") }),
      el("td", { class: "num", text: ms(c.ttft_ms) }), el("td", { class: "num", text: ms(c.latency_ms) }),
      el("td", { class: "num", text: `${tokens(c.input_uncached)} / ${tokens(c.input_cached)} / ${tokens(c.output)}` }),
      el("td", { class: "num call-cost", text: usd(c.cost_usd) })))));
}
