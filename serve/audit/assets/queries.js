// The queries table: server-side order and limit (`audit queries --sort --limit`), the
// filters, a search by id prefix (Enter opens the one query it names), client-side column sort.
import { filtersOnly, go } from "./nav.js";
import { api, calls, el, message, money, ms, tokens, when } from "./util.js";

const SORTS = { time: "newest first", cost: "costliest first", tokens: "largest first" };
const COLUMNS = [
  { name: "started (UTC)", value: (q) => q.started_at, show: (q) => when(q.started_at) },
  { name: "id", value: (q) => q.id, show: (q) => q.id.slice(0, 8) },
  { name: "app", value: (q) => q.app, show: (q) => q.app || "–" },
  { name: "user", value: (q) => q.user, show: (q) => q.user || "–" },
  { name: "status", value: (q) => q.status, show: (q) => q.status },
  { name: "calls", num: true, value: (q) => q.calls, show: calls },
  { name: "tokens", num: true, value: (q) => q.tokens.total, show: (q) => tokens(q.tokens.total) },
  { name: "cost", num: true, value: (q) => Number(q.cost_known_usd), show: money },
  { name: "TTFT", num: true, value: (q) => q.first_token_ms ?? -1, show: (q) => ms(q.first_token_ms) },
  { name: "latency", num: true, value: (q) => q.latency_ms ?? -1, show: (q) => ms(q.latency_ms) },
];

export async function renderQueries(_arg, params) {
  const sort = SORTS[params.get("sort")] ? params.get("sort") : "time";
  const limit = params.get("limit") ?? "50";
  const answer = await api("/api/queries", { ...filtersOnly(), sort, limit });
  const state = { rows: answer.queries, column: null, descending: true, prefix: params.get("id") || "" };
  const body = el("tbody");
  const count = el("span", { class: "muted", id: "queries-count" });
  const draw = () => fill(body, count, state, answer);
  const head = el("tr", {}, COLUMNS.map((column, index) => el("th", {
    class: `sortable${column.num ? " num" : ""}`, title: "sort the rows shown",
    onclick: () => { state.descending = state.column === index ? !state.descending : true; state.column = index; draw(); },
  }, column.name)));
  draw();
  return el("div", {}, toolbar(sort, limit, state, draw), count,
    el("table", { id: "queries-table" }, el("thead", {}, head), body));
}

function toolbar(sort, limit, state, draw) {
  const order = el("select", { id: "sort" },
    Object.entries(SORTS).map(([key, text]) => el("option", { value: key, selected: key === sort, text })));
  order.addEventListener("change", () => go("queries", "", { sort: order.value, limit }));
  const size = el("input", { id: "limit", type: "number", min: "0", value: limit, title: "0: all" });
  size.addEventListener("change", () => go("queries", "", { sort, limit: size.value }));
  const search = el("input", { id: "id-prefix", placeholder: "id prefix (Enter opens it)", value: state.prefix });
  search.addEventListener("input", () => { state.prefix = search.value.trim(); draw(); });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && search.value.trim()) go("query", search.value.trim());
  });
  return el("div", { class: "toolbar" }, el("label", {}, "order ", order),
    el("label", {}, "limit ", size), el("label", {}, "search ", search));
}

function fill(body, count, state, answer) {
  let rows = state.rows.filter((q) => q.id.startsWith(state.prefix));
  if (state.column !== null) {
    const value = COLUMNS[state.column].value;
    rows = [...rows].sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0) * (state.descending ? -1 : 1));
  }
  body.replaceChildren(...rows.map((q) => el("tr", {
    class: "query-row", "data-id": q.id, onclick: () => go("query", q.id),
  }, COLUMNS.map((column) => el("td", {
    class: `${column.num ? "num" : ""}${column.name === "status" ? " status-" + q.status : ""}`,
    title: column.name === "id" ? q.id : null,
  }, column.show(q))))));
  const more = answer.truncated ? " (more match: raise the limit, 0 for all)" : "";
  count.textContent = `${rows.length} of ${state.rows.length} queries shown${more}`;
  if (!state.rows.length) body.replaceChildren(el("tr", {}, el("td", { colspan: COLUMNS.length }, message("no queries match"))));
}
