// /ui/sweeps: the sweeps over GET /v1/sweeps, newest first; the filters and offset live in the page's URL.
import { api, detailText, el, message } from "./lindyn.js";

const form = document.getElementById("filters");
const LIMIT = 50;

async function load() {
  const params = new URLSearchParams(location.search);
  form.name.value = params.get("name") || "";
  form.tag.value = params.getAll("tag").join(", ");
  const query = new URLSearchParams(params);
  query.set("limit", String(LIMIT));
  const r = await api(`/v1/sweeps?${query}`);
  const body = await r.json();
  if (!r.ok) { message(`Filters: ${detailText(body)}`, true); return; }
  message(`${body.total} sweeps`);
  document.getElementById("sweeps-body").replaceChildren(...body.items.map((s) => el("tr", { "data-id": s.id },
    el("td", {}, el("span", { class: `status ${s.status}` }, s.status)),
    el("td", {}, el("a", { href: `/ui/sweeps/${s.id}` }, s.name || s.id.slice(0, 8))),
    el("td", {}, Object.entries(s.tags).map(([k, v]) => el("span", { class: "tag" }, `${k}=${v}`))),
    el("td", {}, Object.entries(s.axes).map(([a, v]) => `${a} (${v.length})`).join(" × ")),
    el("td", {}, el("progress", { max: s.total, value: s.progress.finished, "aria-label": "progress" }), ` ${s.progress.finished}/${s.total}`),
    el("td", {}, Object.entries(s.counts).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(", ")),
    el("td", {}, new Date(s.created_at).toLocaleString()))));
  const offset = Number(params.get("offset") || 0);
  const move = (to) => { const p = new URLSearchParams(location.search); to ? p.set("offset", to) : p.delete("offset"); go(p); };
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("prev").onclick = () => move(Math.max(0, offset - LIMIT));
  document.getElementById("next").disabled = offset + LIMIT >= body.total;
  document.getElementById("next").onclick = () => move(offset + LIMIT);
  if (body.items.some((s) => s.status === "queued" || s.status === "running")) setTimeout(load, 3000);
}

function go(params) {
  history.pushState(null, "", `/ui/sweeps${params.toString() ? `?${params}` : ""}`);
  load();
}

form.onsubmit = (ev) => {
  ev.preventDefault();
  const p = new URLSearchParams();
  if (form.name.value) p.set("name", form.name.value);
  form.tag.value.split(",").map((t) => t.trim()).filter(Boolean).forEach((t) => p.append("tag", t));
  go(p);
};
window.addEventListener("popstate", load);
load().catch((e) => message(String(e.message || e), true));
