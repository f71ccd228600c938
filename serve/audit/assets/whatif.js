// The what-if: the same queries re-priced on every pool of the config, side by side. Each
// column is `audit reprice --on POOL --json`; the bars compare the pools' totals.
import { filtersOnly, go } from "./nav.js";
import { PALETTE, api, calls, el, message, money, ratio, svg, titled, usd, when } from "./util.js";

export async function renderWhatif(_arg, params) {
  const limit = params.get("limit") ?? "50";
  const answer = await api("/api/whatif", { ...filtersOnly(), limit });
  const skipped = answer.skipped.map((s) => el("li", { class: "skipped", text: `${s.pool}: ${s.reason}` }));
  if (!answer.pools.length) {
    return el("div", {}, message(answer.config ? `no pool of ${answer.config} has a price to re-price at` :
      "no config: start `spendgraph audit serve --config FILE` to compare pools"), el("ul", {}, skipped));
  }
  const size = el("input", { id: "limit", type: "number", min: "0", value: limit, title: "0: all" });
  size.addEventListener("change", () => go("whatif", "", { limit: size.value }));
  const first = answer.pools[0];
  return el("div", {},
    el("p", {}, `${first.queries_total} queries (${calls(first.total)} calls) re-priced on ${answer.pools.length} pools of ${answer.config}. ` +
      "Each call's recorded tokens (uncached, cached, output) times the pool's price per million; ratios leave out unpriced and free calls."),
    chart(answer.pools), el("div", { class: "toolbar" }, el("label", {}, "queries shown ", size),
      first.truncated ? el("span", { class: "muted", text: "(the totals cover every query)" }) : null),
    el("div", { class: "wide" }, table(answer.pools)), skipped.length ? el("div", {}, el("h2", { text: "pools left out" }), el("ul", {}, skipped)) : null);
}

function priceLine(target) {
  const p = target.price_per_million;
  return `${usd(p.input_uncached)} / ${usd(p.input_cached)} / ${usd(p.output)} per 1M`;
}

function chart(pools) {
  const width = 760, row = 26, left = 190;
  const height = 30 + row * (pools.length + 1);
  const actual = pools[0].total.actual;
  const values = [Number(actual.cost_known_usd), ...pools.map((p) => Number(p.total.repriced.cost_known_usd))];
  const top = Math.max(...values) || 1;
  const plot = svg("svg", { id: "whatif-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const rows = [["recorded (actual)", actual, "#7f8c8d", null], ...pools.map((p, i) => [p.target.name, p.total.repriced, PALETTE[i % PALETTE.length], p])];
  rows.forEach(([name, cost, colour, pool], index) => {
    const y = 10 + index * row;
    const w = Math.max(1, (Number(cost.cost_known_usd) / top) * (width - left - 170));
    const group = svg("g", { class: pool ? "pool-bar" : "actual-bar", "data-pool": pool ? name : null },
      svg("text", { x: 4, y: y + 14, text: name }),
      svg("rect", { x: left, y, width: w, height: row - 8, fill: colour }),
      svg("text", { x: left + w + 6, y: y + 14, text: money(cost) + (pool ? ` · ${ratio(pool.total.ratio)}` : "") }));
    plot.append(titled(group, pool ? `${name} (${pool.target.hardware || "?"} ${pool.target.precision || ""}): ${priceLine(pool.target)}` : "what the calls cost as recorded"));
  });
  return plot;
}

function table(pools) {
  const first = pools[0];
  const byPool = pools.map((p) => new Map(p.queries.map((q) => [q.query_id, q])));
  const head = el("tr", {}, el("th", { text: "query" }), el("th", { text: "started (UTC)" }),
    el("th", { class: "num", text: "calls" }), el("th", { class: "num", text: "actual" }),
    pools.map((p) => el("th", { class: "num", title: priceLine(p.target) }, p.target.name, el("br"),
      el("span", { class: "muted", text: priceLine(p.target) }))));
  const rows = first.queries.map((q) => el("tr", { class: "query-row", "data-id": q.query_id ?? "",
    onclick: q.query_id ? () => go("query", q.query_id) : null },
  el("td", { title: q.query_id ?? "calls made outside any query", text: q.query_id ? q.query_id.slice(0, 8) : "(no query)" }),
  el("td", { text: when(q.started_at) }), el("td", { class: "num", text: calls(q) }),
  el("td", { class: "num", text: money(q.actual) }),
  byPool.map((m, i) => cell(m.get(q.query_id), pools[i].target.name))));
  const total = el("tr", {}, el("td", { text: "total" }), el("td"), el("td", { class: "num", id: "whatif-calls", text: calls(first.total) }),
    el("td", { class: "num", id: "actual-total", text: money(first.total.actual) }),
    pools.map((p) => el("td", { class: "num pool-total", "data-pool": p.target.name, text: money(p.total.repriced) })));
  const ratios = el("tr", {}, el("td", { text: "ratio" }), el("td"), el("td"), el("td"),
    pools.map((p) => el("td", { class: "num pool-ratio", "data-pool": p.target.name, text: ratio(p.total.ratio) })));
  // Like for like: only the calls priced on both sides (unpriced and free ones left out).
  const priced = first.total.priced_calls;
  const alike = el("tr", {}, el("td", { text: "ratio, priced calls" }), el("td"),
    el("td", { class: "num", text: String(priced.calls) }), el("td", { class: "num", text: usd(priced.actual_usd) }),
    pools.map((p) => el("td", { class: "num pool-priced-ratio", "data-pool": p.target.name,
      title: `${usd(p.total.priced_calls.repriced_usd)} on ${p.target.name}` }, ratio(p.total.priced_calls.ratio))));
  return el("table", { id: "whatif-table" }, el("thead", {}, head), el("tbody", {}, rows), el("tfoot", {}, total, ratios, alike));
}

function cell(tally, pool) {
  if (!tally) return el("td", { class: "num", text: "–" });
  return el("td", { class: "num repriced", "data-pool": pool, title: `ratio ${ratio(tally.ratio)}` }, money(tally.repriced));
}
