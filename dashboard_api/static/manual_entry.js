// "Enter a reading by hand" on the portal: for a cuff without Bluetooth or a value measured
// elsewhere. Every field shows its unit; glucose is typed in the user's unit (mmol/L or
// mg/dL) with its meal context. The server applies ingest's plausibility rules and names
// the field it refuses; the page says which one in words.
import { ApiError, post } from "./api.js";
import { h } from "./dom.js";
import { prefs, t } from "./i18n.js";
import { render } from "./app.js";

const MEALS = ["fasting", "preprandial", "postprandial", "bedtime", "casual"];

/** Fields per kind: [body name, label key, unit label, step]. */
function fieldsOf(kind) {
  const perMin = t("unit.per_min");
  return {
    blood_pressure: [
      ["systolic_mmhg", "metric.systolic", "mmHg", "1"],
      ["diastolic_mmhg", "metric.diastolic", "mmHg", "1"],
      ["pulse_per_min", "manual.pulse", perMin, "1"],
    ],
    glucose: [["glucose", "kind.glucose", prefs.glucoseUnit, prefs.glucoseUnit === "mg/dL" ? "1" : "0.1"]],
    weight: [["weight_kg", "kind.weight", "kg", "0.1"]],
    body_temperature: [["temperature_c", "kind.body_temperature", "°C", "0.1"]],
    spo2: [["spo2_percent", "kind.spo2", "%", "1"], ["pulse_per_min", "manual.pulse", perMin, "1"]],
  }[kind];
}

const OPTIONAL = new Set(["pulse_per_min"]);

/** The manual entry section of the portal for ``patientId``. */
export function manualEntrySection(patientId) {
  const message = h("p", { role: "status", id: "manual-message" });
  const fields = h("div", { class: "stack", id: "manual-fields" });
  const kind = h("select", { id: "manual-kind", name: "kind", onchange: () => draw() },
    ["blood_pressure", "glucose", "weight", "body_temperature", "spo2"].map((k) => h("option", { value: k }, t(`kind.${k}`))));
  const draw = () => {
    const chosen = kind.value;
    fields.replaceChildren(...fieldsOf(chosen).map(([name, label, unit, step]) => h("label", { for: `manual-${name}` },
      t("manual.field", { label: t(label), unit }),
      h("span", { class: "with-unit" },
        h("input", { id: `manual-${name}`, name, type: "number", inputmode: "decimal", step, min: "0",
          required: !OPTIONAL.has(name), "aria-describedby": `manual-${name}-error` }),
        h("span", { class: "unit", "aria-hidden": "true" }, unit)),
      h("span", { class: "error field-error", id: `manual-${name}-error` }))));
    if (chosen === "glucose") {
      fields.append(h("label", { for: "manual-meal" }, t("manual.meal"),
        h("select", { id: "manual-meal", name: "meal" },
          h("option", { value: "" }, t("manual.meal.none")),
          MEALS.map((m) => h("option", { value: m }, t(`manual.meal.${m}`))))));
    }
    fields.append(h("label", { for: "manual-when" }, t("manual.when"),
      h("input", { id: "manual-when", name: "measured_at", type: "datetime-local", "aria-describedby": "manual-measured_at-error" }),
      h("span", { class: "error field-error", id: "manual-measured_at-error" })));
  };
  draw();
  const form = h("form", { class: "stack", id: "manual-form", novalidate: true, onsubmit: async (event) => {
    event.preventDefault();
    for (const span of form.querySelectorAll(".field-error")) span.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    const data = new FormData(form);
    const body = { kind: kind.value };
    const labels = { measured_at: t("manual.when") };
    let missing = false;
    for (const [name, label] of fieldsOf(kind.value)) {
      labels[name] = t(label);
      const raw = String(data.get(name) || "").trim();
      if (raw === "") {
        if (!OPTIONAL.has(name)) {
          missing = true;
          mark(form, name, t("manual.required", { field: t(label) }));
        }
        continue;
      }
      body[name] = Number(raw);
    }
    if (missing) return;
    if (kind.value === "glucose") {
      body.glucose_unit = prefs.glucoseUnit;
      if (data.get("meal")) body.meal = String(data.get("meal"));
    }
    const when = String(data.get("measured_at") || "");
    if (when) body.measured_at = new Date(when).toISOString();
    try {
      await post(`/patients/${encodeURIComponent(patientId)}/readings/manual`, body);
      render();
    } catch (error) {
      message.className = "error";
      if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) {
        for (const issue of error.detail) {
          const name = issue.loc[issue.loc.length - 1];
          mark(form, name, t("manual.implausible", { field: labels[name] || name }));
        }
        message.textContent = t("manual.check");
      } else if (error instanceof ApiError && error.status === 403) {
        message.textContent = t("manual.forbidden");
      } else {
        message.textContent = t("manual.failed");
      }
    }
  } },
  h("label", { for: "manual-kind" }, t("manual.kind"), kind),
  fields,
  h("button", { type: "submit", class: "big", id: "manual-save" }, t("manual.save")));
  return h("section", { "aria-labelledby": "manual-title", id: "manual-entry" },
    h("h2", { id: "manual-title" }, t("manual.title")),
    h("p", { class: "note" }, t("manual.hint")),
    form, message);
}

function mark(form, name, text) {
  const input = form.querySelector(`[name="${name}"]`);
  if (input) input.setAttribute("aria-invalid", "true");
  const span = form.querySelector(`#manual-${name}-error`);
  if (span) span.textContent = text;
}
