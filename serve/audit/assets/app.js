// The page: a hash router (#/spend, #/queries, #/query/ID, #/whatif) and the shared filters.
import { FILTERS, filterParams, route } from "./nav.js";
import { api, message } from "./util.js";
import { renderSpend } from "./spend.js";
import { renderQueries } from "./queries.js";
import { renderQuery } from "./query.js";
import { renderWhatif } from "./whatif.js";

const VIEWS = { spend: renderSpend, queries: renderQueries, query: renderQuery, whatif: renderWhatif };

async function render() {
  const { view, arg, params } = route();
  const filters = filterParams().toString();
  document.querySelectorAll("nav a").forEach((a) => {
    // The tabs keep the filters: a view of one app stays on that app.
    a.href = `#/${a.dataset.view}${filters ? "?" + filters : ""}`;
    a.classList.toggle("active", a.dataset.view === view || (view === "query" && a.dataset.view === "queries"));
  });
  const form = document.getElementById("filters");
  for (const name of FILTERS) {
    form.elements[name].value = params.has(name) ? params.get(name) : (window.auditDefaults[name] || "");
  }
  const target = document.getElementById("view");
  target.replaceChildren(message("loading…"));
  target.dataset.state = "loading";
  try {
    target.replaceChildren(await VIEWS[view](arg, params));
    target.dataset.state = "ready";
  } catch (error) {
    target.replaceChildren(message(error.message, "error"));
    target.dataset.state = "error";
  }
}

async function start() {
  const meta = await api("/api/meta");
  window.auditDefaults = meta.defaults;
  document.getElementById("ledger").textContent = `ledger ${meta.ledger}` +
    (meta.config ? ` · config ${meta.config}` : " · no config (what-if needs one)");
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const { view, arg, params } = route();
    for (const name of FILTERS) {
      const value = event.target.elements[name].value.trim();
      if (value === (window.auditDefaults[name] || "")) params.delete(name); else params.set(name, value);
    }
    const text = params.toString();
    location.hash = `#/${view}${arg ? "/" + encodeURIComponent(arg) : ""}${text ? "?" + text : ""}`;
  });
  window.addEventListener("hashchange", render);
  await render();
}

start().catch((error) => {
  document.getElementById("view").replaceChildren(message(error.message, "error"));
});
