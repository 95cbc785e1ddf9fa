// /ui/runs/{id}: parameters, regime, summaries and the paper's Figure 1 (Plotly), live while the run runs
// (its event stream: status, progress and the rows so far, the curves redrawn as they come).
import { catalogue, downloadLink, dynamicsDash, dynamicsLabel, el, fmt, FINISHED, followEvents, getJSON, kvTable,
  message, metricTitle, plot, postJSON, detailText, page } from "./lindyn.js";

const id = page.run_id;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const ERROR_COLOURS = { train_error: "#1f77b4", test_error: "#d62728" };
let drawn = false;
let live = null; // while the run runs: the trajectory's columns received so far from its event stream
let following = false;

function showRun(run) {
  document.getElementById("title").textContent = `Run ${run.name || run.id}`;
  document.title = `Run ${run.name || run.id.slice(0, 8)} · lindyn`;
  const status = document.getElementById("status");
  status.textContent = run.status;
  status.className = `status ${run.status}`;
  const { step, total } = run.progress;
  const bar = document.getElementById("progress");
  bar.max = total || 1;
  bar.value = FINISHED.includes(run.status) && run.status !== "cancelled" ? bar.max : step;
  document.getElementById("progress-text").textContent = `step ${step} of ${total}`;
  document.getElementById("cancel").hidden = FINISHED.includes(run.status);
  const error = document.getElementById("error");
  error.hidden = !run.error;
  error.textContent = run.error || "";
  const request = run.request || {};
  kvTable(document.getElementById("params"), [
    ["id", run.id], ["name", run.name], ["tags", Object.entries(run.tags).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["sweep", run.sweep_id], ...Object.entries(request).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : v]),
    ["learning rate used", run.lr], ["threshold σ² w", run.threshold], ["ran on", run.backend && `${run.backend} (${run.device})`],
  ]);
  if (run.sweep_id) {
    const cell = document.querySelector("#params tr:nth-child(4) td");
    cell.replaceChildren(el("a", { href: `/ui/sweeps/${run.sweep_id}` }, run.sweep_id));
  }
  kvTable(document.getElementById("regime"), [
    ["regime", run.regime.regime], ["theory applies", String(run.regime.theory_applies)],
    ["underparametrised", String(run.regime.underparametrised)],
    [metricTitle("log_max_distance"), run.comparison ? run.comparison.log_max_distance : null],
  ]);
  const names = Object.keys(run.summaries);
  const table = document.getElementById("summaries");
  const metrics = [...catalogue.summary_metrics.map((m) => [m.name, m.title]), ["stop_reason", "stop reason"]];
  table.replaceChildren(
    el("thead", {}, el("tr", {}, el("th", {}, "metric"), ...names.map((n) => el("th", { scope: "col" }, dynamicsLabel(n))))),
    el("tbody", {}, ...metrics.map(([m, title]) => el("tr", {}, el("th", { scope: "row" }, title),
      ...names.map((n) => el("td", {}, fmt(run.summaries[n][m])))))));
  document.getElementById("again").href = `/ui/new?from=${run.id}`;
}

function errorsFigure(t) {
  const traces = [];
  for (const name of [...new Set(t.dynamics)]) {
    const rows = t.dynamics.map((d, i) => (d === name ? i : -1)).filter((i) => i >= 0);
    for (const col of ["train_error", "test_error"]) {
      traces.push({
        x: rows.map((i) => t.step[i]), y: rows.map((i) => t[col][i]), type: "scatter", mode: "lines",
        name: `${col.replace("_", " ")}, ${dynamicsLabel(name)}`,
        line: { color: ERROR_COLOURS[col], dash: dynamicsDash(name) },
        hovertemplate: `${dynamicsLabel(name)} ${col.replace("_", " ")}<br>step %{x}<br>%{y:.4g}<extra></extra>`,
      });
    }
  }
  return traces;
}

function spectrumFigure(t, run) {
  const traces = [];
  const d = run.d;
  const k = Math.min(run.rank, d);
  for (const name of [...new Set(t.dynamics)]) {
    const rows = t.dynamics.map((dn, i) => (dn === name && t.s_1 && t.s_1[i] !== null ? i : -1)).filter((i) => i >= 0);
    if (!rows.length) continue;
    const x = rows.map((i) => t.step[i]);
    const dash = dynamicsDash(name);
    if (d > k) {  // the rest, s_{k+1} .. s_d, as a band from their minimum to their maximum
      const rest = rows.map((i) => { const v = []; for (let j = k + 1; j <= d; j++) v.push(t[`s_${j}`][i]); return v; });
      traces.push({ x, y: rest.map((v) => Math.min(...v)), type: "scatter", mode: "lines", line: { width: 0 },
        showlegend: false, hoverinfo: "skip", name: `s_${k + 1}..s_${d} min, ${dynamicsLabel(name)}` });
      traces.push({ x, y: rest.map((v) => Math.max(...v)), type: "scatter", mode: "lines", line: { width: 0 },
        fill: "tonexty", fillcolor: "rgba(128,128,128,0.25)", name: `s_${k + 1}..s_${d}, ${dynamicsLabel(name)}`,
        hovertemplate: `${dynamicsLabel(name)} s_${k + 1}..s_${d} max<br>step %{x}<br>%{y:.4g}<extra></extra>` });
    }
    for (let j = 1; j <= k; j++) {
      traces.push({ x, y: rows.map((i) => t[`s_${j}`][i]), type: "scatter", mode: "lines",
        name: `s_${j}, ${dynamicsLabel(name)}`, line: { color: PALETTE[(j - 1) % PALETTE.length], dash },
        hovertemplate: `${dynamicsLabel(name)} s_${j}<br>step %{x}<br>%{y:.4g}<extra></extra>` });
    }
  }
  return traces;
}

async function drawFigure(run) {
  drawCurves(await getJSON(`/v1/runs/${id}/trajectory?spectrum=true`), run);
  drawn = true;
}

/** Figure 1 from the columns t (the trajectory's columnar JSON with spectrum=true, whole or so far). */
function drawCurves(t, run) {
  plot("plot-errors", errorsFigure(t), {
    title: { text: "train and test error" }, xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "error" }, type: "log", exponentformat: "power" }, legend: { orientation: "h", y: -0.2 },
  });
  const spectrum = spectrumFigure(t, run);
  const layout = {
    title: { text: `singular values (top ${run.rank} in colour)` }, xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "singular value" }, type: "log", exponentformat: "power" }, legend: { orientation: "h", y: -0.2 },
  };
  if (run.threshold) {
    layout.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: run.threshold, y1: run.threshold,
      line: { color: "black", dash: "dot", width: 1.5 } }];
    layout.annotations = [{ xref: "paper", x: 1, y: Math.log10(run.threshold), yanchor: "bottom", xanchor: "right",
      text: `threshold σ² w = ${fmt(run.threshold)}`, showarrow: false }];
  }
  plot("plot-spectrum", spectrum, layout);
}

/** Add a rows event's columns to those received so far (a column missing on either side is null there). */
function appendRows(cols) {
  live = live || {};
  const before = live.step ? live.step.length : 0;
  const n = cols.step.length;
  for (const k of Object.keys(cols)) if (!(k in live)) live[k] = new Array(before).fill(null);
  for (const k of Object.keys(live)) live[k].push(...(k in cols ? cols[k] : new Array(n).fill(null)));
}

function liveMessage(run) {
  message(run.status === "queued" ? "Queued: waiting for a worker." : "Running: the curves grow as it runs.");
}

/** Follow the run's event stream: its status and progress, and Figure 1 growing with the rows so far; at the
 * end, the page of the finished run. */
async function follow(run) {
  following = true;
  liveMessage(run);
  let current = run;
  try {
    await followEvents(`/v1/runs/${id}/events`, (type, data) => {
      if (type === "status") { current = data; showRun(data); if (!FINISHED.includes(data.status)) liveMessage(data); }
      else if (type === "reset") live = null; // claimed again: its rows were replaced
      else if (type === "rows") { appendRows(data); drawCurves(live, current); }
    });
  } catch (e) {
    message(String(e.message || e), true);
    following = false;
    return;
  }
  following = false;
  refresh();
}

function downloads() {
  document.getElementById("downloads").hidden = false;
  for (const f of ["csv", "parquet", "json"]) {
    downloadLink(document.getElementById(`dl-${f}`), `/v1/runs/${id}/trajectory?format=${f}`, `trajectory-${id}.${f}`);
  }
  for (const f of ["png", "svg"]) {
    downloadLink(document.getElementById(`dl-${f}`), `/v1/runs/${id}/figure?format=${f}`, `figure-${id}.${f}`);
  }
}

async function refresh() {
  let run;
  try { run = await getJSON(`/v1/runs/${id}`); } catch (e) { message(String(e.message || e), true); return; }
  showRun(run);
  if (run.status === "succeeded" || run.status === "diverged") {
    downloads();
    if (!drawn) await drawFigure(run).catch((e) => message(String(e.message || e), true));
  } else if (!FINISHED.includes(run.status)) {
    if (!following) follow(run);
    return;
  }
  message("");
}

document.getElementById("cancel").onclick = async () => {
  const r = await postJSON(`/v1/runs/${id}/cancel`);
  if (!r.ok) message(`Not cancelled: ${detailText(r.body)}`, true);
  refresh();
};
refresh();
