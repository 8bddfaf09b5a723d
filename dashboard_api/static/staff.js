// The doctor's pages: her patient list and one patient's page.
import { ApiError, get, post } from "./api.js";
import { h } from "./dom.js";
import { ago, dateTime, fromDisplayGlucose } from "./format.js";
import { listOf, prefs, t } from "./i18n.js";
import { charts, fetchSeries, latestInWords, readingsTable } from "./readings.js";
import { alertHistory, cgmSection, fetchSummary } from "./patient_summary.js";
import { isStaff, onLiveReading, render } from "./app.js";

const RANK = { danger: 0, warn: 1, ok: 2, none: 3 };

function worst(patient) {
  return Math.min(3, ...patient.latest.map((r) => RANK[latestInWords(r, []).judged.state]));
}

function latestPills(latest, targets) {
  return latest.map((reading) => {
    const { judged } = latestInWords(reading, targets);
    return h("span", { class: `pill s-${judged.state}` }, `${t(`kind.${reading.kind}`)} ${judged.text} ${judged.word}`);
  });
}

/** My contracted patients with their newest readings, sortable, filtered by condition. */
export async function patientListPage() {
  document.title = `${t("list.title")} · VitalGate`;
  const { data } = await get("/patients");
  const state = { sort: "attention", condition: "" };
  const conditions = [...new Set(data.flatMap((p) => p.conditions))].sort();
  const body = h("tbody");
  const sorters = {
    attention: (a, b) => worst(a) - worst(b),
    name: (a, b) => (a.display_name || a.id).localeCompare(b.display_name || b.id, "zh-CN"),
    contact: (a, b) => new Date(a.last_contact || 0) - new Date(b.last_contact || 0),
  };
  const draw = () => {
    const rows = data.filter((p) => !state.condition || p.conditions.includes(state.condition)).sort(sorters[state.sort]);
    body.replaceChildren(...rows.map((p) => h("tr", { "data-patient": p.id },
      h("td", {}, h("a", { href: `#/patient/${encodeURIComponent(p.id)}` }, p.display_name || p.id)),
      h("td", {}, listOf(p.conditions.map((c) => t(`condition.${c}`))) || "—"),
      h("td", {}, p.latest.length ? latestPills(p.latest, []) : h("span", { class: "pill s-none" }, t("list.no_data"))),
      h("td", {}, p.last_contact ? h("span", { title: dateTime(p.last_contact, p.time_zone) }, ago(p.last_contact)) : "—"),
      h("td", {}, t(`status.${p.status}`)))));
  };
  const sortButton = (key, label) => h("th", { scope: "col", "aria-sort": state.sort === key ? "ascending" : "none" },
    h("button", { class: "sort", type: "button", id: `sort-${key}`, onclick: () => { state.sort = key; draw(); } }, label));
  draw();
  onLiveReading((reading) => {
    if (data.some((p) => p.id === reading.patient_id)) render();
  });
  return h("section", {},
    h("h1", {}, t("list.title"), " ", h("span", { class: "note" }, t("list.count", { n: data.length }))),
    h("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
      h("label", { for: "filter-condition" }, t("list.filter_condition"),
        h("select", { id: "filter-condition", onchange: (e) => { state.condition = e.target.value; draw(); } },
          h("option", { value: "" }, t("list.all")),
          conditions.map((c) => h("option", { value: c }, t(`condition.${c}`)))))),
    h("table", { id: "patient-list" },
      h("thead", {}, h("tr", {},
        sortButton("name", t("list.name")),
        h("th", { scope: "col" }, t("list.conditions")),
        sortButton("attention", t("list.latest")),
        sortButton("contact", t("list.last_contact")),
        h("th", { scope: "col" }, t("list.status")))),
      body));
}

function targetsSection(patient, targets) {
  const list = h("ul", { id: "targets" }, targets.length
    ? targets.map((target) => h("li", {},
      `${t(`metric.${target.metric}`)}: ${target.low ?? "—"}–${target.high ?? "—"} ${target.unit === "mm[Hg]" ? "mmHg" : target.unit}`,
      h("span", { class: "note" }, ` ${t("targets.from", { when: dateTime(target.effective_from, patient.time_zone), by: target.set_by })} · ${target.reason}`)))
    : h("li", { class: "note" }, t("targets.none")));
  const section = h("section", { "aria-labelledby": "targets-title" }, h("h2", { id: "targets-title" }, t("targets.title")), list);
  if (!isStaff()) return section;
  const units = { glucose: "mmol/L", systolic: "mm[Hg]", diastolic: "mm[Hg]", weight: "kg", spo2: "%" };
  const message = h("p", { role: "status" });
  const form = h("form", { class: "inline", id: "target-form", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const metric = String(data.get("metric"));
    const num = (name) => {
      const raw = String(data.get(name) || "").trim();
      if (raw === "") return null;
      const value = Number(raw);
      return metric === "glucose" ? Math.round(fromDisplayGlucose(value) * 10) / 10 : value;
    };
    const from = String(data.get("effective_from") || "");
    try {
      await post(`/patients/${encodeURIComponent(patient.id)}/targets`, {
        metric, low: num("low"), high: num("high"), unit: units[metric],
        effective_from: from ? new Date(from).toISOString() : null, reason: String(data.get("reason")),
      });
      render();
    } catch (error) {
      message.className = "error";
      message.textContent = error instanceof ApiError && error.status === 403 ? t("targets.forbidden") : t("targets.failed");
    }
  } },
    h("label", { for: "t-metric" }, t("targets.metric"),
      h("select", { id: "t-metric", name: "metric" }, Object.keys(units).map((m) => h("option", { value: m }, t(`metric.${m}`))))),
    h("label", { for: "t-low" }, t("targets.low"), h("input", { id: "t-low", name: "low", type: "number", step: "0.1" })),
    h("label", { for: "t-high" }, t("targets.high"), h("input", { id: "t-high", name: "high", type: "number", step: "0.1" })),
    h("label", { for: "t-from" }, t("targets.effective_from"), h("input", { id: "t-from", name: "effective_from", type: "datetime-local" })),
    h("label", { for: "t-reason" }, t("targets.reason"), h("input", { id: "t-reason", name: "reason", required: true })),
    h("button", { type: "submit" }, t("targets.save")));
  section.append(h("p", { class: "note" }, t("targets.glucose_unit_hint", { unit: prefs.glucoseUnit })), form, message);
  return section;
}

export function devicesSection(devices, zone) {
  return h("section", { "aria-labelledby": "devices-title" },
    h("h2", { id: "devices-title" }, t("devices.title")),
    devices.length ? h("table", { id: "devices" },
      h("thead", {}, h("tr", {}, ["devices.device", "devices.gateway", "devices.since", "devices.state"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, devices.map((d) => h("tr", {},
        h("td", {}, `${d.manufacturer} ${d.model} · ${d.serial}`),
        h("td", {}, d.gateway_id),
        h("td", {}, `${dateTime(d.valid_from, zone)}${d.valid_to ? ` – ${dateTime(d.valid_to, zone)}` : ""}`),
        h("td", {}, d.current ? t("devices.current") : t("devices.past"))))))
      : h("p", { class: "note" }, t("devices.none")));
}

/** One patient: charts with target band and TIR, readings with provenance, devices, targets. */
export async function patientPage(patientId) {
  const days = Number(sessionStorage.getItem("vg.days") || 14);
  const path = `/patients/${encodeURIComponent(patientId)}`;
  const patient = await get(path);
  const [targets, devices, data, summary, history] = await Promise.all([
    get(`${path}/targets`), get(`${path}/devices`), fetchSeries(patientId, days),
    fetchSummary(patientId, days), alertHistory(patientId, patient.time_zone),
  ]);
  document.title = `${patient.display_name || patient.id} · VitalGate`;
  onLiveReading((reading) => {
    if (reading.patient_id === patientId) render();
  });
  const period = h("select", { id: "period", onchange: (e) => { sessionStorage.setItem("vg.days", e.target.value); render(); } },
    [7, 14, 30, 90].map((n) => h("option", { value: n, selected: n === days }, t("period.days", { n }))));
  return h("article", { id: "patient" },
    h("p", {}, h("a", { href: "#/patients" }, t("patient.back"))),
    h("h1", {}, patient.display_name || patient.id),
    h("p", {}, listOf(patient.conditions.map((c) => t(`condition.${c}`))), " · ", t(`status.${patient.status}`),
      " · ", t("patient.zone", { zone: patient.time_zone })),
    h("div", { id: "latest" }, latestPills(patient.latest, targets)),
    h("label", { for: "period" }, t("period.label"), " ", period),
    h("div", { class: "cards" }, charts(data, targets, patient.time_zone, summary)),
    cgmSection(summary, targets),
    h("h2", {}, t("table.title")),
    readingsTable(data, targets, patient.time_zone),
    history,
    devicesSection(devices, patient.time_zone),
    downloadsSection(patientId),
    targetsSection(patient, targets));
}

/** The printable report and the exports: plain links, the session cookie authorizes them
 * (and the server audits each download). Shown to everyone; the server answers 403 to a
 * caller the export is not for. */
function downloadsSection(patientId) {
  const base = `/api/v1/patients/${encodeURIComponent(patientId)}`;
  const lang = prefs.language === "en" ? "en" : "zh";
  return h("section", { "aria-labelledby": "downloads-title" },
    h("h2", { id: "downloads-title" }, t("downloads.title")),
    h("ul", { class: "downloads" },
      h("li", {}, h("a", { id: "download-report", href: `${base}/report.pdf?lang=${lang}`, download: "" }, t("downloads.report"))),
      h("li", {}, h("a", { id: "download-csv", href: `${base}/export.csv?what=readings`, download: "" }, t("downloads.csv"))),
      h("li", {}, h("a", { id: "download-fhir", href: `${base}/export/fhir`, download: "" }, t("downloads.fhir")))));
}
