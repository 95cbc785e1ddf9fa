// Keyboard navigation on a heat map. Plotly draws the cells in one SVG, so the panel is the one focusable
// element: the arrow keys move a focused cell (outlined on the plot, its values in Plotly's hover label and
// read out through a live region), Home/End go to the ends of the row, Enter opens the cell's run.
import { el } from "./lindyn.js";

const at = { xi: 0, yi: 0 }; // the focused cell: the same in every panel (they show the same grid)
const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }; // y grows upwards

/** The edges of cell i of the sorted axis values: half-way to its neighbours, as Plotly draws them. */
function edges(v, i) {
  const n = v.length;
  const lo = i > 0 ? (v[i - 1] + v[i]) / 2 : v[0] - (n > 1 ? (v[1] - v[0]) / 2 : 0.5);
  const hi = i < n - 1 ? (v[i] + v[i + 1]) / 2 : v[n - 1] + (n > 1 ? (v[n - 1] - v[n - 2]) / 2 : 0.5);
  return [lo, hi];
}

function liveRegion() {
  let region = document.getElementById("cell-status");
  if (!region) {
    region = el("p", { id: "cell-status", class: "sr", "aria-live": "polite" });
    document.body.append(region);
  }
  return region;
}

/**
 * Make heat map ``div`` keyboard-operable. ``xs``, ``ys``: the axes' values (sorted); ``runs[yi][xi]``: the
 * run of each cell ("" for none); ``describe(xi, yi)``: the cell in words (axes' values, metric, run).
 */
export function cellKeys(div, { xs, ys, runs, describe, label }) {
  div.tabIndex = 0;
  div.setAttribute("role", "application");
  div.setAttribute("aria-roledescription", "heat map");
  div.setAttribute("aria-label", `${label}. Arrow keys move between cells, Enter opens the cell's run.`);
  div.setAttribute("aria-keyshortcuts", "ArrowLeft ArrowRight ArrowUp ArrowDown Home End Enter");
  at.xi = Math.min(at.xi, xs.length - 1);
  at.yi = Math.min(at.yi, ys.length - 1);
  const show = () => {
    const [x0, x1] = edges(xs, at.xi);
    const [y0, y1] = edges(ys, at.yi);
    const outline = (color, width) => ({ type: "rect", xref: "x", yref: "y", x0, x1, y0, y1, line: { color, width },
      fillcolor: "rgba(0,0,0,0)" });
    div.dataset.cell = `${at.xi},${at.yi}`;
    liveRegion().textContent = describe(at.xi, at.yi);
    // black under white: seen on any colour of the map; then the cell's hover label (a relayout clears it)
    Plotly.relayout(div, { shapes: [outline("black", 6), outline("white", 2.5)] })
      .then(() => Plotly.Fx.hover(div, { xval: xs[at.xi], yval: ys[at.yi] }))
      .catch(() => { /* no label (the plot not drawn yet): the outline and the live region remain */ });
  };
  div.onfocus = show;
  div.onblur = () => {
    delete div.dataset.cell;
    if (!div.isConnected) return; // replaced by a refresh
    Plotly.Fx.unhover(div);
    Plotly.relayout(div, { shapes: [] }).catch(() => {});
  };
  div.onkeydown = (ev) => {
    if (ev.key === "Enter") {
      const run = runs[at.yi][at.xi];
      if (run) location.href = `/ui/runs/${run}`;
      return;
    }
    const move = MOVES[ev.key];
    if (move) {
      at.xi = Math.max(0, Math.min(xs.length - 1, at.xi + move[0]));
      at.yi = Math.max(0, Math.min(ys.length - 1, at.yi + move[1]));
    } else if (ev.key === "Home") at.xi = 0;
    else if (ev.key === "End") at.xi = xs.length - 1;
    else return;
    ev.preventDefault(); // no scrolling
    show();
  };
}
