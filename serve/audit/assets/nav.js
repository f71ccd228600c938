// Where the page is: the view, its argument and the filters, all in the location's hash
// (#/queries?app=dungeon), so every view is a link.

export const FILTERS = ["since", "until", "app", "user", "thread"];
const VIEW_NAMES = ["spend", "queries", "query", "whatif"];

export function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [view, ...rest] = path.split("/");
  return { view: VIEW_NAMES.includes(view) ? view : "spend", arg: decodeURIComponent(rest.join("/")),
    params: new URLSearchParams(query) };
}

// Go to `view` (with `arg`), keeping the filters and adding the view's `extra` parameters.
export function go(view, arg = "", extra = {}) {
  const params = filterParams();
  for (const [key, value] of Object.entries(extra)) {
    if (value === "" || value === undefined) params.delete(key); else params.set(key, value);
  }
  const text = params.toString();
  location.hash = `#/${view}${arg ? "/" + encodeURIComponent(arg) : ""}${text ? "?" + text : ""}`;
}

// The filters set in the hash (the server has its defaults); a view's own parameters
// (sort, limit...) stay with that view.
export function filterParams() {
  const current = route().params;
  const params = new URLSearchParams();
  for (const name of FILTERS) if (current.has(name)) params.set(name, current.get(name));
  return params;
}

export function filtersOnly() {
  const current = route().params;
  return Object.fromEntries(FILTERS.filter((n) => current.has(n)).map((n) => [n, current.get(n)]));
}

