// The visit record (#/visit/{task_id}), made for a tablet at the bedside: large fields, one
// column at 768 px, two from 1024 px. Vitals are checked here in words before anything is
// sent (the API checks again); submitting closes the task and shows what followed — the
// next 基本公卫 follow-up and its due window, a referral, the alert resolved. A visit that
// did not happen is recorded as missed, with its reason.
import { get, post } from "./api.js";
import { h } from "./dom.js";
import { MG_PER_DL_PER_MMOL, dateTime } from "./format.js";
import { prefs, t } from "./i18n.js";
import { notFoundPage } from "./app.js";
import {
  failureText, kindWord, localInput, priorityWord, reasonWords, statusWord, taskPath, windowText,
} from "./visits_pages.js";

// Entry bounds: the same as ingest's plausibility limits (ingest/validate.py), so a value
// the form accepts is one the reading store accepts.
export const VITALS = [
  // Oscillometric cuffs cannot detect below 40 mmHg; their range ends at 300 mmHg.
  { name: "systolic", api: "systolic_mmhg", unit: "mmHg", min: 40, max: 300, step: "1" },
  // Below 20 mmHg no cuff reports a diastolic; 250 is above any crisis value.
  { name: "diastolic", api: "diastolic_mmhg", unit: "mmHg", min: 20, max: 250, step: "1" },
  // 20–300 /min: below is arrest, above is faster than any conducted rhythm.
  { name: "pulse", api: "pulse_per_min", unit: "/min", min: 20, max: 300, step: "1" },
  // The widest meter range on the market: 10–600 mg/dL ≈ 0.5–33.3 mmol/L.
  { name: "glucose", api: "glucose_mmol_l", unit: "glucose", min: 0.5, max: 33.3, step: "0.1" },
  // A newborn's weight to a bariatric scale's capacity.
  { name: "weight", api: "weight_kg", unit: "kg", min: 2, max: 400, step: "0.1" },
  // Oximeters are not calibrated far below 70 %; readings under 50 % are probe-off.
  { name: "spo2", api: "spo2_percent", unit: "%", min: 50, max: 100, step: "1" },
  // 25–45 °C: outside it no living body's temperature was ever measured.
  { name: "temperature", api: "temperature_c", unit: "°C", min: 25, max: 45, step: "0.1" },
];
const MEALS = ["fasting", "preprandial", "postprandial", "bedtime", "casual"];
const MAX_RECORD = 2000; // characters: the API's bound on the visit record's text

const glucoseUnit = () => prefs.glucoseUnit;
const unitText = (field) => (field.unit === "glucose" ? glucoseUnit() : field.unit === "/min" ? t("unit.per_min") : field.unit);
const inUnit = (field, mmol) => (field.unit === "glucose" && glucoseUnit() === "mg/dL" ? Math.round(mmol * MG_PER_DL_PER_MMOL) : mmol);

/**
 * The vitals typed in, checked: {vitals (API body, canonical units), errors [{name, text}]}.
 * ``raw`` maps a field name to the text typed (empty: not measured).
 */
export function checkVitals(raw) {
  const vitals = {};
  const errors = [];
  const numbers = {};
  for (const field of VITALS) {
    const text = String(raw[field.name] ?? "").trim().replace(",", ".");
    if (text === "") continue;
    const value = Number(text);
    const label = t(`visits.vital.${field.name}`);
    const low = inUnit(field, field.min);
    const high = inUnit(field, field.max);
    if (!Number.isFinite(value)) {
      errors.push({ name: field.name, text: t("visits.check.number", { field: label }) });
    } else if (value < low || value > high) {
      errors.push({ name: field.name, text: t("visits.check.range", { field: label, low, high, unit: unitText(field) }) });
    } else {
      numbers[field.name] = value;
    }
  }
  const has = (name) => numbers[name] !== undefined;
  const typed = (name) => String(raw[name] ?? "").trim() !== "";
  if (typed("systolic") !== typed("diastolic")) {
    errors.push({ name: typed("systolic") ? "diastolic" : "systolic", text: t("visits.check.bp_pair") });
  } else if (has("systolic") && has("diastolic") && numbers.diastolic >= numbers.systolic) {
    errors.push({ name: "diastolic", text: t("visits.check.bp_order") });
  }
  if (typed("pulse") && !typed("systolic")) errors.push({ name: "pulse", text: t("visits.check.pulse_with_bp") });
  if (typed("glucose") && !raw.meal) errors.push({ name: "meal", text: t("visits.check.meal") });
  for (const field of VITALS) {
    if (!has(field.name)) continue;
    let value = numbers[field.name];
    if (field.unit === "glucose" && glucoseUnit() === "mg/dL") value = Math.round((value / MG_PER_DL_PER_MMOL) * 100) / 100;
    vitals[field.api] = value;
  }
  if (has("glucose") && raw.meal) vitals.glucose_meal = raw.meal;
  return { vitals, errors };
}

const field = (id, label, input, unit) => h("div", { class: "field", "data-field": id },
  h("label", { for: `v-${id}` }, label, unit ? h("span", { class: "unit" }, ` (${unit})`) : null),
  h("div", { class: "with-unit" }, input, unit ? h("span", { class: "unit", "aria-hidden": "true" }, unit) : null),
  h("p", { class: "field-error", id: `err-${id}` }));

function vitalInputs() {
  const inputs = VITALS.map((f) => field(f.name, t(`visits.vital.${f.name}`),
    h("input", { id: `v-${f.name}`, name: f.name, type: "text", inputmode: "decimal", autocomplete: "off", "aria-describedby": `err-${f.name}` }),
    unitText(f)));
  const meal = field("meal", t("visits.vital.meal"),
    h("select", { id: "v-meal", name: "meal", "aria-describedby": "err-meal" },
      h("option", { value: "" }, t("visits.meal.none")),
      MEALS.map((m) => h("option", { value: m }, t(`visits.meal.${m}`)))), null);
  inputs.splice(4, 0, meal);
  return inputs;
}

function programmeFor(task) {
  const [scope, what] = String(task.reason_key || "").split(":");
  if ((scope === "routine" || scope === "referral") && ["hypertension", "diabetes_type2"].includes(what)) return what;
  if (task.rule_id === "B2") return "hypertension";
  return "";
}

function outcome(task, done, patientId) {
  const items = [h("li", { id: "outcome-closed" }, t("visits.outcome.closed", { code: done.task.code, status: statusWord(done.task.status) }))];
  if (done.reading_ids) {
    items.push(h("li", { id: "outcome-readings" }, t("visits.outcome.readings", { n: done.reading_ids.length }), " ",
      h("a", { href: `#/patient/${encodeURIComponent(patientId)}`, id: "outcome-patient" }, t("visits.outcome.patient_page"))));
  }
  if (done.next_task) {
    items.push(h("li", { id: "outcome-next" }, t(done.referral ? "visits.outcome.referral" : "visits.outcome.next", {
      kind: kindWord(done.next_task.kind), window: windowText(done.next_task, task.time_zone), priority: priorityWord(done.next_task.priority),
    })));
  }
  if (done.alert_resolved) items.push(h("li", { id: "outcome-alert" }, t("visits.outcome.alert_resolved")));
  return h("section", { id: "visit-outcome", class: "visit-outcome", "aria-labelledby": "outcome-title" },
    h("h2", { id: "outcome-title", tabindex: "-1" }, t("visits.outcome.title")),
    h("ul", {}, items),
    h("p", {}, h("a", { href: "#/visits", class: "button big" }, t("visits.back"))));
}

/** The visit record of one open task of the caller's queue. */
export async function visitFormPage(taskId) {
  const { data } = await get("/visits/queue");
  const task = data.find((one) => String(one.id) === taskId);
  if (!task) return notFoundPage();
  const patient = await get(`/patients/${encodeURIComponent(task.patient_id)}`);
  const name = patient.display_name || patient.id;
  document.title = `${t("visits.form.title")} · ${name} · VitalGate`;
  const summary = h("div", { id: "form-errors", role: "alert", class: "error" });
  const root = h("article", { id: "visit-form-page", class: "visit-form-page" });
  const now = localInput(new Date());
  const text = (id, label, attrs = {}) => field(id, label, h("textarea", { id: `v-${id}`, name: id, rows: "3", maxlength: String(MAX_RECORD), ...attrs }), null);
  const programme = programmeFor(task);
  const form = h("form", { id: "visit-form", novalidate: true },
    h("fieldset", {}, h("legend", {}, t("visits.form.when_where")),
      h("div", { class: "grid" },
        field("check_in", t("visits.form.check_in"), h("input", { id: "v-check_in", name: "check_in", type: "datetime-local", value: now, required: true, "aria-describedby": "err-check_in" }), null),
        field("check_out", t("visits.form.check_out"), h("input", { id: "v-check_out", name: "check_out", type: "datetime-local", value: now, required: true, "aria-describedby": "err-check_out" }), null),
        field("place", t("visits.form.place"), h("input", { id: "v-place", name: "place", type: "text", maxlength: "200", value: t(`visits.place.${task.kind === "phone" || task.kind === "clinic" ? task.kind : "home_visit"}`) }), null))),
    h("fieldset", {}, h("legend", {}, t("visits.form.consent_title")),
      h("div", { class: "field check", "data-field": "consent" },
        h("label", { for: "v-consent" }, h("input", { id: "v-consent", name: "consent", type: "checkbox", "aria-describedby": "err-consent" }), " ", t("visits.form.consent")),
        h("p", { class: "field-error", id: "err-consent" }))),
    h("fieldset", {}, h("legend", {}, t("visits.form.vitals")),
      h("p", { class: "note" }, t("visits.form.vitals_hint")),
      h("div", { class: "grid" }, vitalInputs())),
    h("fieldset", {}, h("legend", {}, t("visits.form.care")),
      h("div", { class: "field check" },
        h("label", { for: "v-meds_reviewed" }, h("input", { id: "v-meds_reviewed", name: "meds_reviewed", type: "checkbox" }), " ", t("visits.form.meds_reviewed"))),
      text("meds", t("visits.form.meds")),
      text("education", t("visits.form.education")),
      text("assessment", t("visits.form.assessment"))),
    h("fieldset", {}, h("legend", {}, t("visits.form.follow_up")),
      h("p", { class: "note" }, t("visits.form.follow_up_hint")),
      field("programme", t("visits.form.programme"), h("select", { id: "v-programme", name: "programme", "aria-describedby": "err-programme" },
        h("option", { value: "" }, t("visits.programme.none")),
        ["hypertension", "diabetes_type2"].map((p) => h("option", { value: p, selected: p === programme }, t(`condition.${p}`)))), null),
      h("div", { class: "field radios", "data-field": "classification", role: "radiogroup", "aria-labelledby": "cls-label" },
        h("span", { id: "cls-label" }, t("visits.form.classification")),
        ["controlled", "not_controlled"].map((c) => h("label", { class: "radio", for: `v-cls-${c}` },
          h("input", { type: "radio", name: "classification", id: `v-cls-${c}`, value: c }), " ", t(`visits.class.${c}`))),
        h("p", { class: "field-error", id: "err-classification" }))),
    task.alert_id ? h("fieldset", {}, h("legend", {}, t("visits.form.alert")),
      h("div", { class: "field check" },
        h("label", { for: "v-resolve" }, h("input", { id: "v-resolve", name: "resolve", type: "checkbox" }), " ", t("visits.form.resolve_alert"))),
      field("resolve_note", t("visits.form.resolve_note"), h("input", { id: "v-resolve_note", name: "resolve_note", type: "text", maxlength: "1000", "aria-describedby": "err-resolve_note" }), null)) : null,
    h("p", {}, h("button", { type: "submit", class: "big", id: "visit-submit" }, t("visits.form.submit"))));

  const showErrors = (errors, scroll) => {
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    for (const error of errors) {
      const slot = form.querySelector(`#err-${error.name}`);
      if (slot) slot.textContent = error.text;
      const input = form.querySelector(`#v-${error.name}`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
    summary.replaceChildren(...(errors.length ? [h("p", {}, t("visits.check.summary", { n: errors.length })), h("ul", {}, errors.map((e) => h("li", {}, e.text)))] : []));
    if (errors.length && scroll) summary.scrollIntoView({ block: "center" });
  };

  // Everything the nurse typed, checked: {errors, body}. Run on submit, then on every
  // change, so an error disappears as soon as it is corrected.
  const check = () => {
    const values = Object.fromEntries(new FormData(form).entries());
    const { vitals, errors } = checkVitals(values);
    const checkIn = values.check_in ? new Date(values.check_in) : null;
    const checkOut = values.check_out ? new Date(values.check_out) : null;
    if (!checkIn) errors.push({ name: "check_in", text: t("visits.check.check_in") });
    if (!checkOut) errors.push({ name: "check_out", text: t("visits.check.check_out") });
    if (checkIn && checkOut && checkOut < checkIn) errors.push({ name: "check_out", text: t("visits.check.out_before_in") });
    if (!values.consent) errors.push({ name: "consent", text: t("visits.check.consent") });
    if (values.programme && !values.classification) errors.push({ name: "classification", text: t("visits.check.classification") });
    if (!values.programme && values.classification) errors.push({ name: "programme", text: t("visits.check.programme") });
    const lines = [
      values.place ? `${t("visits.form.place")}: ${values.place}` : null,
      `${t("visits.form.meds_reviewed")}: ${values.meds_reviewed ? t("visits.yes") : t("visits.no")}${values.meds ? ` — ${values.meds}` : ""}`,
      values.education ? `${t("visits.form.education")}: ${values.education}` : null,
      values.assessment ? `${t("visits.form.assessment")}: ${values.assessment}` : null,
    ].filter(Boolean);
    const record = lines.join("\n");
    if (record.length > MAX_RECORD) errors.push({ name: "assessment", text: t("visits.check.too_long", { n: MAX_RECORD }) });
    if (errors.length) return { errors, body: null };
    const body = {
      check_in_at: checkIn.toISOString(),
      check_out_at: checkOut.toISOString(),
      consent: true,
      assessment: record,
      vitals,
      programme: values.programme || null,
      classification: values.programme ? values.classification : null,
      resolve_alert: !!values.resolve,
      resolve_note: String(values.resolve_note || "").trim(),
    };
    return { errors, body };
  };
  let tried = false;
  const recheck = () => {
    if (tried) showErrors(check().errors, false);
  };
  form.addEventListener("input", recheck);
  form.addEventListener("change", recheck);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    tried = true;
    const { errors, body } = check();
    showErrors(errors, true);
    if (errors.length) return;
    const button = form.querySelector("#visit-submit");
    button.disabled = true;
    try {
      const done = await post(`${taskPath(task)}/complete`, body);
      root.replaceChildren(heading(), outcome(task, done, task.patient_id));
      root.querySelector("#outcome-title").focus();
    } catch (error) {
      button.disabled = false;
      summary.replaceChildren(h("p", {}, failureText(error)));
    }
  });

  const missedReason = h("input", { id: "v-missed_reason", type: "text", maxlength: "2000", "aria-describedby": "err-missed_reason" });
  const missedError = h("p", { class: "field-error", id: "err-missed_reason" });
  const missed = h("section", { class: "missed", "aria-labelledby": "missed-title" },
    h("h2", { id: "missed-title" }, t("visits.form.missed_title")),
    h("p", { class: "note" }, t("visits.form.missed_hint")),
    h("div", { class: "field" }, h("label", { for: "v-missed_reason" }, t("visits.form.missed_reason")), missedReason, missedError),
    h("button", { type: "button", class: "secondary big", id: "visit-missed", onclick: async () => {
      const why = missedReason.value.trim();
      if (!why) {
        missedError.textContent = t("visits.error.reason");
        missedReason.focus();
        return;
      }
      try {
        const closed = await post(`${taskPath(task)}/missed`, { reason: why });
        root.replaceChildren(heading(), outcome(task, { task: closed }, task.patient_id));
      } catch (error) {
        missedError.textContent = failureText(error);
      }
    } }, t("visits.form.record_missed")));

  const heading = () => h("header", { class: "visit-form-head" },
    h("p", {}, h("a", { href: "#/visits" }, t("visits.back"))),
    h("h1", {}, t("visits.form.title"), " · ", name),
    h("p", {}, `${kindWord(task.kind)} · ${statusWord(task.status)} · ${task.code} · ${priorityWord(task.priority)}`),
    h("p", {}, reasonWords(task), " · ", t("visits.window"), " ", windowText(task),
      task.scheduled_at ? ` · ${t("visits.scheduled_at", { when: dateTime(task.scheduled_at, task.time_zone), who: task.assignee || "—" })}` : ""));
  if (task.status !== "scheduled") {
    root.append(heading(), h("p", { class: "error", id: "form-not-scheduled" }, t("visits.form.schedule_first")));
    return root;
  }
  root.append(heading(), summary, form, missed);
  return root;
}
