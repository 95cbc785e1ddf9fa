// /ui/runs: the runs table over GET /v1/runs; the filters, sort and cursor live in the page's URL.
import { api, catalogue, detailText, dynamicsLabel, el, fmt, FINISHED, getJSON, message, postJSON } from "./lindyn.js";

const form = document.getElementById("filters");
const selected = new Set();
const SUMMARY_COLUMNS = ["min_test_error", "min_test_error_step", "stable_rank_at_min"];
const COLUMNS = [
  ["status", "status"], ["name", "name"], ["tags", null], ["d", "d"], ["rank", "rank"],
  ["gamma_sigma2", "gamma_sigma2"], ["gamma_w", "gamma_w"], ["dynamics", null], ["regime", null],
  ...SUMMARY_COLUMNS.map((m) => [m, m]),
];
const HEADINGS = { gamma_sigma2: "γ_σ²", gamma_w: "γ_w", min_test_error_step: "its step",
  min_test_error: "min test error", stable_rank_at_min: "stable rank at min" };

// the form: dynamics, sort keys and ranges from the catalogue
const dyn = document.getElementById("dynamics-filter");
dyn.append(el("option", { value: "" }, "any"), ...catalogue.dynamics.map((d) => el("option", { value: d.name }, d.label)));
document.getElementById("sort").append(...catalogue.sort_keys.flatMap((k) => [
  el("option", { value: `-${k}` }, `${k} ↓`), el("option", { value: k }, `${k} ↑`)]));
const ranges = document.getElementById("ranges");
const details = el("details", {}, el("summary", {}, "parameter and metric ranges (metrics: of the dynamics chosen)"));
for (const name of [...catalogue.parameters, ...catalogue.metric_ranges]) {
  details.append(el("div", { class: "range" }, el("span", {}, name),
    el("input", { name: `${name}_min`, type: "number", step: "any", "aria-label": `${name} minimum`, placeholder: "min" }),
    el("input", { name: `${name}_max`, type: "number", step: "any", "aria-label": `${name} maximum`, placeholder: "max" })));
}
ranges.append(details);

function formToParams() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(form)) {
    if (v === "") continue;
    if (k === "tag") v.split(",").map((t) => t.trim()).filter(Boolean).forEach((t) => params.append("tag", t));
    else params.append(k, v);
  }
  if (params.get("sort") === "-created_at") params.delete("sort");
  return params;
}

function paramsToForm(params) {
  form.reset();
  for (const box of form.querySelectorAll("input[name=status]")) box.checked = params.getAll("status").includes(box.value);
  for (const input of form.querySelectorAll("input:not([type=checkbox]), select")) {
    if (input.name === "tag") input.value = params.getAll("tag").join(", ");
    else if (params.has(input.name)) input.value = params.get(input.name);
  }
  if (!params.has("sort")) document.getElementById("sort").value = "-created_at";
  if ([...params.keys()].some((k) => k.endsWith("_min") || k.endsWith("_max"))) details.open = true;
}

function head(params) {
  const sort = params.get("sort") || "-created_at";
  const row = document.getElementById("runs-head");
  row.replaceChildren(el("th", {}, el("span", { class: "sr" }, "select")));
  for (const [col, key] of COLUMNS) {
    const label = HEADINGS[col] || col;
    if (!key) { row.append(el("th", { scope: "col" }, label)); continue; }
    const dir = sort === key ? "ascending" : sort === `-${key}` ? "descending" : null;
    const button = el("button", { type: "button", class: "sort", title: `sort by ${key}` },
      label, dir === "ascending" ? " ▲" : dir === "descending" ? " ▼" : "");
    button.onclick = () => {
      const p = new URLSearchParams(location.search);
      p.set("sort", sort === `-${key}` ? key : `-${key}`);
      if (SUMMARY_COLUMNS.includes(key) && !p.get("dynamics")) p.set("dynamics", "gd");
      p.delete("cursor");
      go(p);
    };
    row.append(el("th", { scope: "col", "aria-sort": dir || "none" }, button));
  }
}

function progressCell(run) {
  const { step, total } = run.progress;
  const cell = el("td", {}, el("span", { class: `status ${run.status}` }, run.status));
  if (run.status === "running" || run.status === "queued") {
    cell.append(" ", el("progress", { max: total || 1, value: step, "aria-label": "progress" }), ` ${step}/${total}`);
  }
  return cell;
}

function row(run, dynamics) {
  const d = dynamics && run.summaries[dynamics] ? dynamics : run.dynamics[0];
  const s = run.summaries[d] || {};
  const box = el("input", { type: "checkbox", "aria-label": `select run ${run.id}`, "data-id": run.id });
  box.checked = selected.has(run.id);
  box.onchange = () => { box.checked ? selected.add(run.id) : selected.delete(run.id); updateButtons(); };
  const tags = Object.entries(run.tags).map(([k, v]) => el("span", { class: "tag" }, `${k}=${v}`));
  return el("tr", { "data-id": run.id, "data-status": run.status },
    el("td", {}, box), progressCell(run),
    el("td", {}, el("a", { href: `/ui/runs/${run.id}` }, run.name || run.id.slice(0, 8))),
    el("td", {}, tags), el("td", {}, run.d), el("td", {}, run.rank), el("td", {}, fmt(run.gamma_sigma2)),
    el("td", {}, fmt(run.gamma_w)), el("td", {}, run.dynamics.map(dynamicsLabel).join(", ")),
    el("td", {}, run.regime.regime), el("td", {}, fmt(s.min_test_error)), el("td", {}, fmt(s.min_test_error_step)),
    el("td", {}, fmt(s.stable_rank_at_min)));
}

function updateButtons() {
  const n = selected.size;
  document.getElementById("compare").disabled = n < 2 || n > 10;
  document.getElementById("compare").textContent = `Compare selected (${n})`;
  document.getElementById("cancel-selected").disabled = n === 0;
}

let timer = null;
async function load() {
  clearTimeout(timer);
  const params = new URLSearchParams(location.search);
  paramsToForm(params);
  head(params);
  const query = new URLSearchParams(params);
  query.set("limit", "50");
  let pageData;
  try {
    const r = await api(`/v1/runs?${query}`);
    const body = await r.json();
    if (!r.ok) { message(`Filters: ${detailText(body)}`, true); return; }
    pageData = body;
  } catch (e) { message(String(e), true); return; }
  message("");
  document.getElementById("runs-body").replaceChildren(...pageData.items.map((run) => row(run, params.get("dynamics"))));
  document.getElementById("count").textContent = `${pageData.total} runs`;
  const next = document.getElementById("next");
  next.disabled = !pageData.next_cursor;
  next.onclick = () => { const p = new URLSearchParams(location.search); p.set("cursor", pageData.next_cursor); go(p); };
  const first = document.getElementById("first");
  first.disabled = !params.has("cursor");
  first.onclick = () => { const p = new URLSearchParams(location.search); p.delete("cursor"); go(p); };
  updateButtons();
  if (pageData.items.some((run) => !FINISHED.includes(run.status))) timer = setTimeout(load, 2000);
}

function go(params) {
  history.pushState(null, "", `/ui/runs${params.toString() ? `?${params}` : ""}`);
  load();
}

form.onsubmit = (ev) => { ev.preventDefault(); go(formToParams()); };
document.getElementById("clear").onclick = (ev) => { ev.preventDefault(); go(new URLSearchParams()); };
window.addEventListener("popstate", load);
document.getElementById("compare").onclick = () => { location.href = `/ui/compare?runs=${[...selected].join(",")}`; };
document.getElementById("cancel-selected").onclick = async () => {
  const results = await Promise.all([...selected].map((id) => postJSON(`/v1/runs/${id}/cancel`)));
  const refused = results.filter((r) => !r.ok).map((r) => detailText(r.body));
  message(refused.length ? `Not cancelled: ${refused.join("; ")}` : "Cancelled.", refused.length > 0);
  load();
};
load();
