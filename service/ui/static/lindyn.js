// Shared by every page: the page's data, the API client (same origin, the session's API key), small helpers.
export const page = JSON.parse(document.getElementById("page-data").textContent);
export const catalogue = page.catalogue;
const KEY = "lindyn.apiKey"; // sessionStorage: this tab's session only, never a cookie or a URL

function askKey(reason) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-reason").textContent = reason;
  input.value = "";
  return new Promise((resolve) => {
    const done = (key) => {
      dialog.close();
      document.getElementById("key-form").onsubmit = null;
      document.getElementById("key-cancel").onclick = null;
      resolve(key);
    };
    document.getElementById("key-form").onsubmit = (ev) => { ev.preventDefault(); done(input.value.trim() || null); };
    document.getElementById("key-cancel").onclick = () => done(null);
    dialog.showModal();
    input.focus();
  });
}

function showForget() {
  const b = document.getElementById("key-forget");
  b.hidden = !sessionStorage.getItem(KEY);
  b.onclick = () => { sessionStorage.removeItem(KEY); b.hidden = true; };
}
showForget();

/** fetch() on the API with the session's key; asks for a key on 401 or 403 and tries again. */
export async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const key = sessionStorage.getItem(KEY);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401 && response.status !== 403) return response;
    const body = await response.clone().json().catch(() => ({}));
    const reason = response.status === 401
      ? "This server needs an API key. It is kept for this browser tab's session only."
      : `The key was refused (${body.detail || "forbidden"}). Enter another.`;
    const entered = await askKey(reason);
    if (!entered) return response;
    sessionStorage.setItem(KEY, entered);
    showForget();
  }
}

/** The JSON of a GET, or throws an Error with the API's detail. */
export async function getJSON(path) {
  const r = await api(path);
  if (!r.ok) throw new Error(`${path}: ${r.status} ${detailText(await r.json().catch(() => null))}`);
  return r.json();
}

export function detailText(body) {
  if (!body) return "";
  const d = body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => `${e.field ?? (e.loc || []).join(".")}: ${e.msg}`).join("; ");
  return JSON.stringify(body);
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  return node;
}

export function message(text, isError = false) {
  const m = document.getElementById("message");
  m.textContent = text || "";
  m.className = isError ? "error" : "";
}

export function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : v.toPrecision(4).replace(/\.?0+$/, "");
  }
  return String(v);
}

export function kvTable(table, rows) {
  table.replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, fmt(v)))));
}

export const FINISHED = ["succeeded", "diverged", "failed", "cancelled"];
export const dynamicsLabel = (n) => (catalogue.dynamics.find((d) => d.name === n) || { label: n }).label;
export const dynamicsDash = (n) => (catalogue.dynamics.find((d) => d.name === n) || { dash: "solid" }).dash;
export const metricTitle = (m) =>
  ([...catalogue.summary_metrics, ...catalogue.comparison_metrics].find((x) => x.name === m) || { title: m }).title;

/** A Plotly figure, responsive, without Plotly's links to its own site. */
export function plot(div, traces, layout) {
  return Plotly.react(div, traces, { margin: { t: 40, r: 20, b: 50, l: 70 }, hovermode: "closest", ...layout },
    { responsive: true, displaylogo: false, showSendDataToCloud: false, showLink: false });
}

/** A download link through the API: with a key, fetched with it and saved (a key never goes in a URL). */
export function downloadLink(a, path, filename) {
  a.href = path;
  a.setAttribute("download", filename);
  a.onclick = async (ev) => {
    if (!sessionStorage.getItem(KEY)) return; // the plain link works: no key needed
    ev.preventDefault();
    const r = await api(path);
    if (!r.ok) { message(`${filename}: ${r.status} ${detailText(await r.json().catch(() => null))}`, true); return; }
    const url = URL.createObjectURL(await r.blob());
    const tmp = el("a", { href: url, download: filename });
    document.body.append(tmp); tmp.click(); tmp.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
}

export async function postJSON(path, body) {
  const r = await api(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await r.json().catch(() => null);
  return { status: r.status, ok: r.ok, body: json };
}

/** Follow a server-sent event stream of the API (GET /v1/.../events) until its "end" event: each event goes to
 * onEvent(type, data). Read with fetch() and a ReadableStream (not EventSource, which cannot send the
 * Authorization header: the key never goes in a URL); a dropped stream is opened again with Last-Event-ID. */
export async function followEvents(path, onEvent) {
  let lastId = null;
  for (let failures = 0; failures < 30;) {
    const headers = { Accept: "text/event-stream" };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    let ended = false;
    try {
      const r = await api(path, { headers });
      if (!r.ok) throw new Error(`${path}: ${r.status} ${detailText(await r.json().catch(() => null))}`);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let type = "message", id = null;
          const data = [];
          for (const line of block.split("\n")) {
            if (!line || line.startsWith(":")) continue;
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            const text = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (field === "event") type = text;
            else if (field === "data") data.push(text);
            else if (field === "id") id = text;
          }
          if (!data.length) continue;
          if (id !== null) lastId = id;
          failures = 0;
          onEvent(type, JSON.parse(data.join("\n")));
          if (type === "end") { ended = true; reader.cancel(); return; }
        }
      }
    } catch (e) {
      if (e instanceof Error && /: 4\d\d /.test(e.message)) throw e;  // not found, refused: no point again
    }
    if (ended) return;
    failures += 1;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`${path}: the event stream keeps dropping`);
}
