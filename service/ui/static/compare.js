// /ui/compare?runs=ID,ID,...: 2 to 10 runs' curves overlaid, and the parameters that differ between them.
import { dynamicsDash, dynamicsLabel, el, fmt, getJSON, message, page, plot } from "./lindyn.js";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

async function main() {
  const ids = page.run_ids;
  if (ids.length < 2) { message(`Choose 2 to ${page.max_compared} runs (on the runs page, or ?runs=ID,ID).`, true); return; }
  const runs = await Promise.all(ids.map((id) => getJSON(`/v1/runs/${id}`)));
  const label = (run, i) => `${i + 1}: ${run.name || run.id.slice(0, 8)}`;
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.request)))].sort();
  const same = (k) => runs.every((r) => JSON.stringify(r.request[k]) === JSON.stringify(runs[0].request[k]));
  const differ = keys.filter((k) => !same(k));
  document.getElementById("differ").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", {}, "run"), el("th", {}, "status"), ...differ.map((k) => el("th", { scope: "col" }, k)))),
    el("tbody", {}, ...runs.map((r, i) => el("tr", {}, el("th", { scope: "row" }, el("a", { href: `/ui/runs/${r.id}` }, label(r, i))),
      el("td", {}, r.status), ...differ.map((k) => el("td", {}, Array.isArray(r.request[k]) ? r.request[k].join(", ") : fmt(r.request[k])))))));
  if (!differ.length) message("These runs have the same parameters.");
  const finished = runs.map((r) => r.status === "succeeded" || r.status === "diverged");
  const trajectories = await Promise.all(runs.map((r, i) => (finished[i] ? getJSON(`/v1/runs/${r.id}/trajectory?spectrum=true`) : null)));
  const test = [], train = [], spectrum = [];
  trajectories.forEach((t, i) => {
    if (!t) return;
    const run = runs[i];
    const colour = PALETTE[i % PALETTE.length];
    for (const name of [...new Set(t.dynamics)]) {
      const rows = t.dynamics.map((d, j) => (d === name ? j : -1)).filter((j) => j >= 0);
      const common = { type: "scatter", mode: "lines", line: { color: colour, dash: dynamicsDash(name) },
        legendgroup: run.id };
      const x = rows.map((j) => t.step[j]);
      test.push({ ...common, x, y: rows.map((j) => t.test_error[j]), name: `${label(run, i)}, ${dynamicsLabel(name)}` });
      train.push({ ...common, x, y: rows.map((j) => t.train_error[j]), name: `${label(run, i)}, ${dynamicsLabel(name)}` });
      const srows = rows.filter((j) => t.s_1 && t.s_1[j] !== null);
      for (let k = 1; k <= Math.min(run.rank, run.d); k++) {
        spectrum.push({ ...common, x: srows.map((j) => t.step[j]), y: srows.map((j) => t[`s_${k}`][j]),
          name: `${label(run, i)}, ${dynamicsLabel(name)}, s_${k}`, showlegend: k === 1 });
      }
    }
  });
  const layout = (title, y) => ({ title: { text: title }, xaxis: { title: { text: "step" } },
    yaxis: { title: { text: y }, type: "log", exponentformat: "power" }, legend: { orientation: "h", y: -0.2 } });
  plot("plot-test", test, layout("test error", "test error"));
  plot("plot-train", train, layout("train error", "train error"));
  plot("plot-spectrum", spectrum, layout("top singular values (s_1..s_k)", "singular value"));
  const waiting = runs.map((r, i) => (finished[i] ? null : label(r, i))).filter(Boolean);
  if (waiting.length) message(`Not finished (no curves): ${waiting.join(", ")}`);
}

main().catch((e) => message(String(e.message || e), true));
