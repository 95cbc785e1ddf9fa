// /ui/new and /ui/sweeps/new: forms built from the request bodies' JSON schemas (the OpenAPI document), each
// field's description as help and its default shown; a 422 is shown beside the field it names.
import { el, detailText, getJSON, message, page, postJSON } from "./lindyn.js";

const { kind, schemas } = page;
const fieldsDiv = document.getElementById("fields");
const resolve = (s) => (s && s.$ref ? schemas.components[s.$ref.split("/").pop()] : s);
const LABEL_FIELDS = ["name", "tags"];

/** The schema's type, with a nullable anyOf [X, null] read as X. */
function shape(prop) {
  prop = resolve(prop);
  if (prop.anyOf) {
    const inner = prop.anyOf.map(resolve).filter((s) => s.type !== "null");
    if (inner.length === 1) return { ...inner[0], ...prop, anyOf: undefined, nullable: true, type: inner[0].type };
  }
  return prop;
}

function widget(path, prop, value) {
  const s = shape(prop);
  const common = { id: `f-${path}`, name: path, "aria-describedby": `help-${path} err-${path}` };
  if (s.enum) {
    const select = el("select", common, s.nullable ? el("option", { value: "" }, "–") : null,
      ...s.enum.map((v) => el("option", { value: v }, v)));
    select.value = value ?? "";
    return select;
  }
  if (s.type === "array" && resolve(s.items).enum) {
    const box = el("div", { id: common.id, role: "group", "aria-describedby": common["aria-describedby"] });
    for (const v of resolve(s.items).enum) {
      const input = el("input", { type: "checkbox", name: path, value: v });
      input.checked = (value || []).includes(v);
      box.append(el("label", {}, input, ` ${v} `));
    }
    return box;
  }
  if (s.type === "integer" || s.type === "number") {
    const input = el("input", { ...common, type: "number", step: s.type === "integer" ? "1" : "any",
      placeholder: s.nullable ? "optional" : "" });
    input.value = value ?? "";
    return input;
  }
  if (s.type === "object") {
    const text = el("textarea", { ...common, rows: 2, placeholder: s.additionalProperties ? "key=value, one a line" : "JSON" });
    text.dataset.kind = s.additionalProperties && !s.properties ? "pairs" : "json";
    text.value = value ? (text.dataset.kind === "pairs" ? Object.entries(value).map(([k, v]) => `${k}=${v}`).join("\n") : JSON.stringify(value)) : "";
    return text;
  }
  const input = el("input", { ...common, type: "text", placeholder: s.nullable ? "optional" : "" });
  input.value = value ?? "";
  return input;
}

function fieldRow(path, name, prop, required, value) {
  const s = shape(prop);
  const dflt = s.default !== undefined && s.default !== null ? `default: ${JSON.stringify(s.default)}` : required ? "required" : "optional";
  return el("div", { class: "field", "data-field": path },
    el("label", { for: `f-${path}` }, name, required ? " *" : ""), widget(path, prop, value),
    el("div", { class: "help", id: `help-${path}` }, s.description || s.title || "", " ", el("em", {}, `(${dflt})`)),
    el("div", { class: "error", id: `err-${path}`, role: "alert" }));
}

/** Rows for an object schema's properties; ``initial`` fills them in (else each default, else an example). */
function rows(prefix, schema, initial, skip = []) {
  const out = [];
  for (const [name, prop] of Object.entries(schema.properties)) {
    if (skip.includes(name)) continue;
    const s = shape(prop);
    const required = (schema.required || []).includes(name);
    let value = initial ? initial[name] : s.default ?? (required && s.examples ? s.examples[0] : undefined);
    // no default in the schema (the dynamics' default is a factory; the exponents are one of two forms): the
    // schema's example, so that the form as it opens is a valid request (Figure 1's GD and self-consistent)
    if (!initial && value === undefined && s.examples && (s.type === "array" || ["gamma_sigma2", "gamma_w"].includes(name))) value = s.examples[0];
    out.push(fieldRow(prefix + name, name, prop, required, value));
  }
  return out;
}

function read(path, prop) {
  const s = shape(prop);
  const node = document.getElementById(`f-${path}`);
  if (s.type === "array") return [...node.querySelectorAll("input:checked")].map((i) => i.value);
  const raw = node.value.trim();
  if (raw === "") return undefined;
  if (s.type === "integer" || s.type === "number") return Number(raw);
  if (s.type === "object") {
    if (node.dataset.kind === "json") return JSON.parse(raw);
    return Object.fromEntries(raw.split(/\n|,/).map((l) => l.trim()).filter(Boolean).map((l) => {
      const at = l.indexOf("=");
      return at < 0 ? [l, ""] : [l.slice(0, at).trim(), l.slice(at + 1).trim()];
    }));
  }
  return raw;
}

function collect(prefix, schema, skip = []) {
  const body = {};
  for (const [name, prop] of Object.entries(schema.properties)) {
    if (skip.includes(name)) continue;
    const v = read(prefix + name, prop);
    if (v !== undefined) body[name] = v;
  }
  return body;
}

// ---- sweeps: the base request's fields, then one to three axes over its numeric fields ----------------------
const runSchema = resolve(schemas.run);
const numeric = Object.entries(runSchema.properties).filter(([, p]) => ["integer", "number"].includes(shape(p).type)).map(([n]) => n);

function axisRow(i, axis = {}) {
  const select = el("select", { id: `f-axes.${i}.name`, "aria-label": `axis ${i + 1} field` }, el("option", { value: "" }, "–"),
    ...numeric.map((n) => el("option", { value: n }, n)));
  select.value = axis.name || "";
  const mode = el("select", { id: `f-axes.${i}.mode`, "aria-label": `axis ${i + 1} form` },
    el("option", { value: "linspace" }, "linspace: start, stop, n"), el("option", { value: "values" }, "values: v1, v2, ..."));
  mode.value = axis.mode || "linspace";
  const values = el("input", { id: `f-axes.${i}.values`, type: "text", "aria-label": `axis ${i + 1} values`, placeholder: "-2.2, -0.8, 8" });
  values.value = axis.values || "";
  return el("div", { class: "field", "data-field": `axes.${i}` }, el("label", {}, `axis ${i + 1}`),
    el("div", {}, select, " ", mode, " ", values), el("div", { class: "help" }, "a numeric request field and its values"),
    el("div", { class: "error", id: `err-axes.${i}`, role: "alert" }));
}

function collectAxes() {
  const axes = {};
  for (let i = 0; i < 3; i++) {
    const name = document.getElementById(`f-axes.${i}.name`).value;
    if (!name) continue;
    const nums = document.getElementById(`f-axes.${i}.values`).value.split(",").map((v) => v.trim()).filter(Boolean).map(Number);
    axes[name] = document.getElementById(`f-axes.${i}.mode`).value === "linspace" ? { linspace: nums } : { values: nums };
  }
  return axes;
}

// ---- errors beside their fields -------------------------------------------------------------------------------
function clearErrors() {
  for (const e of document.querySelectorAll(".field .error")) e.textContent = "";
  for (const f of document.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
  document.getElementById("form-error").hidden = true;
}

function fieldFor(loc) {
  const parts = (loc || []).filter((p) => p !== "body").map(String);
  if (kind === "sweep" && parts[0] === "axes" && parts.length > 1) {
    for (let i = 0; i < 3; i++) if (document.getElementById(`f-axes.${i}.name`).value === parts[1]) return `axes.${i}`;
  }
  for (let n = parts.length; n > 0; n--) {
    const path = parts.slice(0, n).join(".");
    if (document.querySelector(`.field[data-field="${CSS.escape(path)}"]`)) return path;
    if (kind === "sweep" && document.querySelector(`.field[data-field="base.${CSS.escape(path)}"]`)) return `base.${path}`;
  }
  return null;
}

function showErrors(detail) {
  const loose = [];
  for (const e of Array.isArray(detail) ? detail : [{ msg: String(detail) }]) {
    let path = fieldFor(e.loc);
    if (!path && e.field) path = fieldFor([e.field]);
    if (!path) { loose.push(`${(e.loc || []).join(".")}: ${e.msg}`); continue; }
    const row = document.querySelector(`.field[data-field="${CSS.escape(path)}"]`);
    row.classList.add("invalid");
    const err = document.getElementById(`err-${path}`);
    err.textContent = err.textContent ? `${err.textContent}; ${e.msg}` : e.msg;
  }
  const general = document.getElementById("form-error");
  general.hidden = loose.length === 0;
  general.textContent = loose.join("; ");
  const first = document.querySelector(".field.invalid input, .field.invalid select, .field.invalid textarea");
  if (first) first.focus();
}

// ---- the form ----------------------------------------------------------------------------------------------------
async function build() {
  const params = new URLSearchParams(location.search);
  let initial = null;
  if (kind === "run" && params.get("from")) {
    const run = await getJSON(`/v1/runs/${params.get("from")}`);
    initial = { ...run.request, name: run.name, tags: run.tags };
    // one form of each quantity: the exponents (the normalised request carries both)
    if (initial.gamma_sigma2 !== null && initial.gamma_sigma2 !== undefined) delete initial.sigma2;
    if (initial.gamma_w !== null && initial.gamma_w !== undefined) delete initial.width;
    document.getElementById("title").textContent = "New run (from an earlier one)";
    message(`Prefilled from run ${run.id}: change what you like and submit.`);
  }
  if (kind === "run") {
    fieldsDiv.replaceChildren(...rows("", runSchema, initial));
  } else {
    const sweep = resolve(schemas.sweep);
    // the schema's defaults, and the small Figure 2 sweep of SweepCreate's example as a start
    const example = (sweep.examples || [])[0] || {};
    const defaults = Object.fromEntries(Object.entries(runSchema.properties).map(([n, p]) => [n, shape(p).default]));
    const exampleAxes = Object.entries(example.axes || {}).map(([name, spec]) => ({
      name, mode: spec.linspace ? "linspace" : "values", values: (spec.linspace || spec.values).join(", ") }));
    const baseRows = rows("base.", runSchema, { ...defaults, ...(example.base || {}) }, LABEL_FIELDS.concat(["gamma_sigma2", "gamma_w"]));
    fieldsDiv.replaceChildren(
      ...rows("", sweep, null, ["base", "axes"]),
      el("h2", {}, "Axes"), ...[0, 1, 2].map((i) => axisRow(i, exampleAxes[i])),
      el("h2", {}, "Base request (shared by every grid point)"), ...baseRows);
  }
}

document.getElementById("submit-form").onsubmit = async (ev) => {
  ev.preventDefault();
  clearErrors();
  let body;
  try {
    if (kind === "run") body = collect("", runSchema);
    else {
      const sweep = resolve(schemas.sweep);
      body = { ...collect("", sweep, ["base", "axes"]), base: collect("base.", runSchema, LABEL_FIELDS.concat(["gamma_sigma2", "gamma_w"])), axes: collectAxes() };
    }
  } catch (e) { showErrors([{ msg: `not JSON: ${e.message}` }]); return; }
  const button = document.getElementById("submit");
  button.disabled = true;
  const r = await postJSON(kind === "run" ? "/v1/runs" : "/v1/sweeps", body);
  button.disabled = false;
  if (r.ok) { location.href = kind === "run" ? `/ui/runs/${r.body.id}` : `/ui/sweeps/${r.body.id}`; return; }
  if (r.status === 422) { showErrors(r.body.detail); message("Please correct the fields marked.", true); return; }
  message(`${r.status}: ${detailText(r.body)}`, true);
};

build().catch((e) => message(String(e.message || e), true));
