// The patient and family portal: phone-first, large values in words and colour, trends,
// devices and how long since each kind was last measured. A family member switches
// between the patients who consented.
import { get } from "./api.js";
import { symptomForm, whatToDoBox } from "./portal_care.js";
import { h } from "./dom.js";
import { dateTime, daysSince } from "./format.js";
import { t } from "./i18n.js";
import { charts, fetchSeries, latestInWords } from "./readings.js";
import { devicesSection } from "./staff.js";
import { go, notFoundPage, onLiveReading, render } from "./app.js";

// A device not used for this many days is worth a word to the family: daily measuring is
// what home monitoring asks of BP and glucose patients.
const UNUSED_DAYS = 3;

export async function portalPage(selected) {
  const { data } = await get("/patients");
  document.title = `${t("portal.title")} · VitalGate`;
  if (!data.length) {
    return h("section", {}, h("h1", {}, t("portal.title")), h("p", {}, t("portal.none")));
  }
  const patient = selected ? data.find((p) => p.id === selected) : data[0];
  if (!patient) return notFoundPage();
  const days = Number(sessionStorage.getItem("vg.portal_days") || 7);
  const path = `/patients/${encodeURIComponent(patient.id)}`;
  const own = patient.relationship === "self";
  const [series, devices, targets, todo] = await Promise.all([
    fetchSeries(patient.id, days),
    get(`${path}/devices`).catch(() => []),
    get(`${path}/targets`).catch(() => []),
    // A relative whose consent does not cover alerts is refused (403): no box for them.
    get(`${path}/what-to-do`).catch(() => ({ items: [] })),
  ]);
  onLiveReading((reading) => {
    if (reading.patient_id === patient.id) render();
  });
  const zone = patient.time_zone;
  const chooser = data.length > 1 ? h("label", { for: "portal-patient" }, t("portal.choose"), " ",
    h("select", { id: "portal-patient", onchange: (e) => go(`#/portal/${e.target.value}`) },
      data.map((p) => h("option", { value: p.id, selected: p.id === patient.id }, p.display_name || p.id)))) : null;
  const latest = h("ul", { class: "big-readings", id: "portal-latest" }, patient.latest.map((reading) => {
    const { judged, sentence } = latestInWords(reading, targets);
    return h("li", { class: `s-${judged.state}`, "data-kind": reading.kind }, sentence,
      h("span", { class: "when" }, t("portal.measured", { when: dateTime(reading.measured_at, zone) })));
  }));
  const stale = patient.latest
    .map((reading) => ({ kind: reading.kind, days: daysSince(reading.measured_at) }))
    .filter((item) => item.days >= UNUSED_DAYS);
  const period = h("div", { role: "group", "aria-label": t("period.label") },
    [7, 30].map((n) => h("button", { type: "button", class: n === days ? "" : "secondary", "aria-pressed": String(n === days),
      id: `portal-days-${n}`, onclick: () => { sessionStorage.setItem("vg.portal_days", String(n)); render(); } }, t("period.days", { n }))));
  const nav = own ? h("nav", { class: "portal-nav", "aria-label": t("portal.title") },
    h("a", { href: `#/portal/${patient.id}/family`, id: "nav-family" }, t("portal.nav.family")), " ",
    h("a", { href: `#/portal/${patient.id}/settings`, id: "nav-settings" }, t("portal.nav.settings"))) : null;
  return h("article", { id: "portal" },
    chooser,
    whatToDoBox(todo.items, own),
    nav,
    h("h1", {}, patient.relationship === "self" || patient.relationship === "own_record" ? t("portal.mine") : t("portal.of", { name: patient.display_name || patient.id })),
    patient.latest.length ? latest : h("p", {}, t("portal.no_readings")),
    stale.length ? h("ul", { id: "portal-stale", class: "notices" }, stale.map((item) =>
      h("li", { class: "pill s-warn" }, t("portal.unused", { device: t(`device_of.${item.kind}`), n: item.days })))) : null,
    own ? symptomForm(path) : null,
    h("h2", {}, t("portal.trends")),
    period,
    h("div", { class: "cards" }, charts(series, targets, zone)),
    devicesSection(devices, zone));
}
