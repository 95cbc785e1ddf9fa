// /ui/sweeps/{id}: progress, the paper's Figure 2 as heat maps over the sweep's two axes (a line plot for one
// axis), any summary metric, the table with downloads, cancel. Click a cell: that run's page.
// Replicate axes (sweep.replicates) are averaged over by the API (table?aggregate=): the heat maps show the
// mean, or the sd with the toggle; a third axis gets a slice picker (table?at=axis:value); one axis left over
// is a line plot with error bars (one sd).
import { catalogue, detailText, downloadLink, dynamicsLabel, el, fmt, FINISHED, getJSON, kvTable, message,
  metricTitle, page, plot, postJSON } from "./lindyn.js";
import { cellKeys } from "./cellkeys.js";

const id = page.sweep_id;
const metricSelect = document.getElementById("metric");
const dynSelect = document.getElementById("dynamics");
let sweep = null;
let table = null;
let view = null; // what the plots show: the table, or its slice and average from the API (null: the table)
const sliceAt = {}; // axis -> the value picked for it

const axisLabel = (a) => page.axis_labels[a] || a;
const unique = (values) => [...new Set(values)].sort((a, b) => a - b);

function column(metric, dynamics) {
  if (table[metric]) return metric; // log_max_distance, or a prefixed name
  return `${dynamics}.${metric}`;
}

function theoryTraces(x0, x1, y0, y1) {
  const traces = [];
  const line = (id, label, ys, colour, dash, width = 2.5, legend = true) => traces.push({ x: [x0, x1], y: ys,
    type: "scatter", mode: "lines", name: label, line: { color: colour, dash, width }, hoverinfo: "name",
    showlegend: legend, legendgroup: id });
  for (const t of page.theory) {
    const [a, b] = t.of; // gamma_w = a + b gamma_sigma2
    const ys = [a + b * x0, a + b * x1];
    if (t.id === "theory-active-lazy") { // white, outlined in black (as in the PNG): seen on any colour
      line(t.id, t.label, ys, "black", "solid", 4.5);
      line(t.id, t.label, ys, "white", "solid", 2, false);
    } else line(t.id, t.label, ys, "red", "solid");
  }
  const { d, rank } = sweep.base;
  if (d > 1 && rank >= 1 && !("d" in sweep.axes) && !("rank" in sweep.axes)) {
    const level = Math.log(rank) / Math.log(d); // service.plots.theory_lines: w = k, gamma_w = ln k / ln d
    line("theory-underparametrised", `underparametrised: w = k (γ_w = ${level.toPrecision(3)})`, [level, level], "orange", "dash");
  }
  return traces.filter((t) => t.y.some((y) => y >= Math.min(y0, y1) && y <= Math.max(y0, y1)));
}

// A refined sweep's points are not a full grid: each cell of the union of the axes' values that is not a point
// takes the value (and run) of its nearest point, distances in units of each axis's range (as the PNG's).
function nearestFill(table, xs, ys, z, runs, x, y, col) {
  const sx = xs[xs.length - 1] - xs[0] || 1;
  const sy = ys[ys.length - 1] - ys[0] || 1;
  ys.forEach((yv, yi) => xs.forEach((xv, xi) => {
    if (runs[yi][xi]) return;
    let best = -1;
    let bestD = Infinity;
    table.run_id.forEach((_, i) => {
      const d = ((table[x][i] - xv) / sx) ** 2 + ((table[y][i] - yv) / sy) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    });
    if (best >= 0) { z[yi][xi] = table[col] ? table[col][best] : null; runs[yi][xi] = table.run_id[best]; }
  }));
}

/** The axes the plots are drawn over (not replicates), those sliced, and the replicates averaged over. */
function layout() {
  const axes = Object.keys(sweep.axes);
  const reps = (sweep.replicates || []).filter((a) => axes.includes(a));
  const free = axes.filter((a) => !reps.includes(a));
  const drawn = free.includes("gamma_sigma2") && free.includes("gamma_w") ? ["gamma_sigma2", "gamma_w"] : free.slice(0, 2);
  return { drawn, sliced: free.filter((a) => !drawn.includes(a)), reps };
}

/** The table the plots show: the sweep's own, or its slice / average over the replicates (GET table?at=&aggregate=). */
async function loadView() {
  const { sliced, reps } = layout();
  if (!sliced.length && !reps.length) { view = null; return; }
  const params = new URLSearchParams();
  for (const a of reps) params.append("aggregate", a);
  for (const a of sliced) params.append("at", `${a}:${sliceAt[a] ?? sweep.axes[a][0]}`);
  view = await getJSON(`/v1/sweeps/${id}/table?${params}`);
}

function slicePickers() {
  const { drawn, sliced, reps } = layout();
  const holder = document.getElementById("slices");
  if (holder.dataset.axes !== sliced.join(",")) {
    holder.dataset.axes = sliced.join(",");
    holder.replaceChildren(...sliced.map((a) => el("label", {}, `${axisLabel(a)} = `,
      el("select", { id: `at-${a}`, "data-axis": a, onchange: async (ev) => {
        sliceAt[a] = ev.target.value;
        await loadView();
        draw();
      } }, ...sweep.axes[a].map((v) => el("option", { value: v }, fmt(v)))))));
  }
  document.getElementById("sd-toggle").hidden = !reps.length || drawn.length < 2; // a line has error bars
  const n = reps.reduce((p, a) => p * sweep.axes[a].length, 1);
  document.getElementById("view-note").textContent = reps.length
    ? `averaged over ${reps.join(", ")} (${n} per point)${sliced.length ? `, sliced at ${sliced.join(", ")}` : ""}`
    : sliced.length ? `sliced at ${sliced.join(", ")}` : "";
}

function heatmap(div, metric, dynamics, showLegend) {
  const data = view || table;
  const averaged = Boolean(view && view.runs);
  const stat = averaged ? (document.getElementById("sd").checked ? "sd" : "mean") : "";
  const [x, y] = layout().drawn;
  const col = column(metric, dynamics) + (stat ? `.${stat}` : "");
  const xs = unique(data[x]);
  const ys = unique(data[y]);
  const z = ys.map(() => xs.map(() => null));
  const runs = ys.map(() => xs.map(() => ""));
  data[x].forEach((xv, i) => {
    const xi = xs.indexOf(xv);
    const yi = ys.indexOf(data[y][i]);
    z[yi][xi] = data[col] ? data[col][i] : null;
    runs[yi][xi] = averaged ? `${data[`${column(metric, dynamics)}.n`]?.[i] ?? 0} of ${data.runs[i]} runs` : data.run_id[i];
  });
  if (sweep.refine && !averaged) nearestFill(data, xs, ys, z, runs, x, y, col); // a refined, non-uniform mesh
  const title = (stat ? `${stat} of ` : "") + metricTitle(metric.split(".").pop());
  const traces = [{
    type: "heatmap", x: xs, y: ys, z, customdata: runs, colorscale: "Viridis", hoverongaps: true,
    colorbar: { title: { text: title, side: "right" } },
    hovertemplate: `${axisLabel(x)} = %{x}<br>${axisLabel(y)} = %{y}<br>${title} = %{z:.4g}<br>${averaged ? "" : "run "}%{customdata}<extra></extra>`,
  }];
  const dx = xs.length > 1 ? (xs[1] - xs[0]) / 2 : 0.5;
  const dy = ys.length > 1 ? (ys[1] - ys[0]) / 2 : 0.5;
  const xr = [xs[0] - dx, xs[xs.length - 1] + dx];
  const yr = [ys[0] - dy, ys[ys.length - 1] + dy];
  if (x === "gamma_sigma2" && y === "gamma_w") traces.push(...theoryTraces(xr[0], xr[1], yr[0], yr[1]));
  for (const t of traces.slice(1)) t.showlegend = showLegend && t.showlegend;
  plot(div, traces, {
    title: { text: `${title}${col.includes(".") ? ` (${dynamicsLabel(dynamics)})` : ""}` },
    xaxis: { title: { text: axisLabel(x) }, range: xr }, yaxis: { title: { text: axisLabel(y) }, range: yr },
    legend: { orientation: "h", y: -0.25 }, plot_bgcolor: "#d9d9d9",
  });
  if (!averaged) div.on("plotly_click", (ev) => {
    const run = ev.points && ev.points[0] && ev.points[0].customdata;
    if (run) location.href = `/ui/runs/${run}`;
  });
  cellKeys(div, { xs, ys, runs, label: `${title}: heat map over ${axisLabel(x)} and ${axisLabel(y)}`,
    describe: (xi, yi) => `${axisLabel(x)} = ${fmt(xs[xi])}, ${axisLabel(y)} = ${fmt(ys[yi])}, ${title} = ` +
      `${fmt(z[yi][xi])}, ${runs[yi][xi] ? `run ${runs[yi][xi]}` : "no run"}` });
}

function linePlot(div, metric, dynamics) {
  const data = view || table;
  const averaged = Boolean(view && view.runs);
  const [x] = layout().drawn;
  const base = column(metric, dynamics);
  const col = averaged ? `${base}.mean` : base;
  const order = data[x].map((_, i) => i).sort((a, b) => data[x][a] - data[x][b]);
  const pick = (c) => (data[c] ? order.map((i) => data[c][i]) : []);
  const title = (averaged ? "mean of " : "") + metricTitle(metric.split(".").pop());
  const trace = { x: pick(x), y: pick(col), type: "scatter", mode: "lines+markers", name: title,
    customdata: averaged ? pick(`${base}.n`) : pick("run_id"),
    hovertemplate: `${axisLabel(x)} = %{x}<br>${title} = %{y:.4g}<br>${averaged ? "± sd, n = " : "run "}%{customdata}<extra></extra>` };
  if (averaged) trace.error_y = { type: "data", array: pick(`${base}.sd`).map((v) => v ?? 0), visible: true };
  plot(div, [trace], {
    title: { text: title }, xaxis: { title: { text: axisLabel(x) } }, yaxis: { title: { text: averaged ? `${title} (± sd)` : title } },
  });
  if (!averaged) div.on("plotly_click", (ev) => { const run = ev.points[0] && ev.points[0].customdata; if (run) location.href = `/ui/runs/${run}`; });
}

function draw() {
  const { drawn } = layout();
  const panels = document.getElementById("panels");
  const metric = metricSelect.value;
  const dynamics = dynSelect.value;
  const metrics = metric === "figure2" ? catalogue.figure2 : [metric];
  slicePickers();
  if (!drawn.length) {
    panels.replaceChildren(el("p", {}, "Every axis of this sweep is a replicate: see the table below."));
    return;
  }
  const focused = [...panels.children].indexOf(document.activeElement); // kept across a refresh
  panels.replaceChildren(...metrics.map((m) => el("div", { class: "plot panel", role: "img", "aria-label": metricTitle(m), "data-metric": m })));
  [...panels.children].forEach((div, i) => {
    if (drawn.length === 2) heatmap(div, metrics[i], dynamics, i === 0);
    else linePlot(div, metrics[i], dynamics);
  });
  if (focused >= 0 && panels.children[focused]) panels.children[focused].focus();
}

function pickers() {
  const ran = catalogue.dynamics.filter((d) => Object.keys(table).some((c) => c.startsWith(`${d.name}.`)));
  const keep = dynSelect.value;
  dynSelect.replaceChildren(...ran.map((d) => el("option", { value: d.name }, d.label)));
  if (keep) dynSelect.value = keep;
  if (metricSelect.options.length === 1) {
    metricSelect.append(...catalogue.summary_metrics.map((m) => el("option", { value: m.name }, m.title)));
    if (table.log_max_distance) metricSelect.append(el("option", { value: "log_max_distance" }, metricTitle("log_max_distance")));
  }
}

function showTable() {
  const axes = Object.keys(sweep.axes);
  const dyn = dynSelect.value;
  const metrics = catalogue.figure2.map((m) => column(m, dyn)).filter((c) => table[c]);
  document.getElementById("table-head").replaceChildren(...["run", "status", ...axes, ...metrics].map((c) => el("th", { scope: "col" }, c)));
  document.getElementById("table-body").replaceChildren(...table.run_id.map((run, i) => el("tr", {},
    el("td", {}, el("a", { href: `/ui/runs/${run}` }, run.slice(0, 8))), el("td", {}, table.status[i]),
    ...axes.map((a) => el("td", {}, fmt(table[a][i]))), ...metrics.map((c) => el("td", {}, fmt(table[c][i]))))));
}

async function refresh() {
  try {
    sweep = await getJSON(`/v1/sweeps/${id}`);
    table = await getJSON(`/v1/sweeps/${id}/table`);
    await loadView();
  } catch (e) { message(String(e.message || e), true); return; }
  document.getElementById("title").textContent = `Sweep ${sweep.name || sweep.id}`;
  const status = document.getElementById("status");
  status.textContent = sweep.status;
  status.className = `status ${sweep.status}`;
  const bar = document.getElementById("progress");
  bar.max = sweep.total;
  bar.value = sweep.progress.finished;
  document.getElementById("progress-text").textContent = `${sweep.progress.finished} of ${sweep.total} runs finished`;
  document.getElementById("counts").textContent = Object.entries(sweep.counts).filter(([, n]) => n).map(([s, n]) => `${s}: ${n}`).join(" · ");
  document.getElementById("cancel").hidden = sweep.status === "finished" || sweep.status === "cancelled";
  kvTable(document.getElementById("base"), [
    ...Object.entries(sweep.axes).map(([a, v]) => [`axis ${a}`, `${v.length} values, ${fmt(v[0])} … ${fmt(v[v.length - 1])}${(sweep.replicates || []).includes(a) ? " (replicates)" : ""}`]),
    ...Object.entries(sweep.base).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v]),
    ["tags", Object.entries(sweep.tags).map(([k, v]) => `${k}=${v}`).join(", ")],
    ...(sweep.refine ? [["refine", `${sweep.refine.metric}: round ${sweep.refine.round} of ${sweep.refine.rounds} ` +
      `(${sweep.refine.state}), points per round ${sweep.refine.points.join(", ")}, ${sweep.refine.added} added ` +
      `of ${sweep.refine.budget}; heat maps: each cell in its nearest point's value`]] : []),
  ]);
  pickers();
  draw();
  showTable();
  const running = sweep.status === "queued" || sweep.status === "running";
  message(running ? "Running: the heat maps fill in as runs finish." : "");
  if (running) setTimeout(refresh, 2000);
}

for (const f of ["csv", "parquet", "json"]) {
  downloadLink(document.getElementById(`dl-${f}`), `/v1/sweeps/${id}/table?format=${f}`, `sweep-${id}.${f}`);
}
document.getElementById("runs-link").href = `/ui/runs?sweep_id=${id}`;
metricSelect.onchange = draw;
document.getElementById("sd").onchange = draw;
dynSelect.onchange = () => { draw(); showTable(); };
document.getElementById("cancel").onclick = async () => {
  const r = await postJSON(`/v1/sweeps/${id}/cancel`);
  if (!r.ok) message(`Not cancelled: ${detailText(r.body)}`, true);
  refresh();
};
refresh();
