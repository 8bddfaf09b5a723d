// The patient page's figures from GET /patients/{id}/summary (the summaries module the
// report and the alert rules use): the CGM time-of-day percentile chart with its table, the
// 7-day home BP mean, the weight change against the patient's own earlier weight, and the
// patient's alert history. A figure the data cannot support says what is missing.
import { get } from "./api.js";
import { h, s } from "./dom.js";
import { dateTime, glucoseBand, toDisplayGlucose } from "./format.js";
import { currentLanguage, prefs, t } from "./i18n.js";

const W = 640, H = 240, L = 44, R = 10, T = 10, B = 28;
const DAY_MINUTES = 1440;

/** The summary of the last ``days`` days (the API bounds it to 90). */
export function fetchSummary(patientId, days) {
  return get(`/patients/${encodeURIComponent(patientId)}/summary?days=${Math.min(90, days)}`);
}

const glucoseNumber = (mmol) => {
  const value = toDisplayGlucose(mmol);
  return prefs.glucoseUnit === "mg/dL" ? String(Math.round(value)) : value.toFixed(1);
};
const signed = (value, digits) => `${value > 0 ? "+" : value < 0 ? "−" : "±"}${Math.abs(value).toFixed(digits)}`;

/** "数据不足：…" with what the figure needs, or the number through ``show``. */
function figureText(figure, show) {
  if (figure.value !== null && figure.value !== undefined) return show(figure.value);
  return t("summary.insufficient", { have: Math.round(figure.have ?? 0), need: Math.round(figure.need ?? 0) });
}

const hourLabel = (minute) => `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;

/**
 * The daily-overlay percentile chart: all days laid over one 00:00–24:00 axis, the 5–95 %
 * and 25–75 % ranges shaded, the median drawn, the target band behind them. Not called
 * "AGP" (a trademarked report format).
 */
export function percentileChart(bands, targetBand) {
  const title = t("bands.title");
  const lo = Math.max(0, Math.min(toDisplayGlucose(2.2), ...bands.map((b) => toDisplayGlucose(b.p5))));
  const hi = Math.max(toDisplayGlucose(16.7), ...bands.map((b) => toDisplayGlucose(b.p95)));
  const width = bands.length > 1 ? bands[1].start_minute - bands[0].start_minute : 60;
  // Each bin is drawn at its middle: the 07:00–08:00 bin's median sits at 07:30.
  const x = (minute) => L + (minute / DAY_MINUTES) * (W - L - R);
  const y = (mmol) => T + (1 - (toDisplayGlucose(mmol) - lo) / (hi - lo)) * (H - T - B);
  const mid = (band) => x(band.start_minute + width / 2);
  const area = (upper, lower) => {
    const top = bands.map((b, i) => `${i ? "L" : "M"}${mid(b).toFixed(1)},${y(b[upper]).toFixed(1)}`).join("");
    const bottom = [...bands].reverse().map((b) => `L${mid(b).toFixed(1)},${y(b[lower]).toFixed(1)}`).join("");
    return `${top}${bottom}Z`;
  };
  const svg = s("svg", { class: "chart percentiles", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
    s("title", {}, title));
  svg.append(s("rect", { class: "band", x: L, width: W - L - R, y: y(targetBand.high),
    height: Math.max(0, y(targetBand.low) - y(targetBand.high)) }));
  for (let i = 0; i <= 4; i += 1) {
    const v = lo + ((hi - lo) * i) / 4;
    const py = T + (1 - i / 4) * (H - T - B);
    svg.append(s("line", { class: "grid", x1: L, x2: W - R, y1: py, y2: py }),
      s("text", { x: L - 4, y: py + 4, "text-anchor": "end" }, v.toFixed(prefs.glucoseUnit === "mg/dL" ? 0 : 1)));
  }
  for (let minute = 0; minute <= DAY_MINUTES; minute += 180) {
    // The last label ends at the axis end instead of running off the chart.
    const anchor = minute === DAY_MINUTES ? "end" : "middle";
    svg.append(s("text", { x: x(minute), y: H - 8, "text-anchor": anchor }, hourLabel(minute)));
  }
  if (bands.length > 1) {
    svg.append(s("path", { class: "p5-95", d: area("p95", "p5") }), s("path", { class: "p25-75", d: area("p75", "p25") }));
    svg.append(s("path", { class: "median", d: bands.map((b, i) => `${i ? "L" : "M"}${mid(b).toFixed(1)},${y(b.p50).toFixed(1)}`).join("") }));
  }
  svg.append(s("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
    s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  return svg;
}

// The page redraws on every live reading and preference change: an opened table stays open.
let bandsTableOpen = false;

/** The chart's table alternative: one row per time-of-day bin. */
function bandsTable(bands) {
  const unit = prefs.glucoseUnit;
  return h("details", { id: "bands-table-block", open: bandsTableOpen, ontoggle: (e) => { bandsTableOpen = e.target.open; } },
    h("summary", {}, t("bands.table")),
    h("table", { id: "bands-table" },
      h("caption", { class: "note" }, t("bands.caption", { unit })),
      h("thead", {}, h("tr", {}, [t("bands.hour"), "5%", "25%", t("bands.median"), "75%", "95%", t("bands.readings")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, bands.map((b) => h("tr", {},
        h("th", { scope: "row" }, hourLabel(b.start_minute)),
        ...["p5", "p25", "p50", "p75", "p95"].map((k) => h("td", {}, glucoseNumber(b[k]))),
        h("td", {}, String(b.readings)))))));
}

/** CGM figures and the percentile chart (with its table), or what is missing for them. */
export function cgmSection(summary, targets) {
  const cgm = summary.cgm;
  if (!cgm) return null;
  const band = glucoseBand(targets);
  const unit = prefs.glucoseUnit;
  const pct = (v) => `${v.toFixed(1)}%`;
  return h("section", { id: "cgm-summary" },
    h("h2", {}, t("bands.title")),
    h("p", { class: "note" }, t("bands.period", { first: summary.first_day, last: summary.last_day, active: cgm.active_percent.toFixed(0) })),
    h("ul", { class: "figures" },
      h("li", { id: "cgm-mean" }, `${t("summary.mean_glucose")}: `, figureText(cgm.mean_mmol_l, (v) => `${glucoseNumber(v)} ${unit}`)),
      h("li", { id: "cgm-gmi" }, `${t("summary.gmi")}: `, figureText(cgm.gmi_percent, pct)),
      h("li", { id: "cgm-cv" }, `${t("summary.cv")}: `, figureText(cgm.cv_percent, pct))),
    cgm.bands.length
      ? [percentileChart(cgm.bands, band),
        h("p", { class: "note" }, t("bands.legend", { low: glucoseNumber(band.low), high: glucoseNumber(band.high), unit })),
        bandsTable(cgm.bands)]
      : h("p", { class: "note", id: "bands-insufficient" }, t("bands.insufficient")));
}

/** "7 日家庭血压均值 132/82 mmHg（12 次读数，不含第一天）", or why there is none. */
export function bpMeanText(summary) {
  const bp = summary.blood_pressure;
  if (!bp) return null;
  const sys = bp.home_mean_systolic, dia = bp.home_mean_diastolic;
  const text = sys.value != null
    ? t("summary.bp_mean", { sys: Math.round(sys.value), dia: Math.round(dia.value), n: bp.readings_used })
    : t("summary.bp_mean_insufficient", { have: bp.readings_used, need: Math.round(sys.need ?? 12) });
  const high = sys.value != null && (sys.value >= 135 || dia.value >= 85);
  return h("p", { id: "bp-mean", class: high ? "figure warn" : "figure" }, text,
    high ? ` ${t("summary.bp_mean_high")}` : "");
}

/** The latest day's weight, its 3- and 7-day change and the weight it is measured from. */
export function weightText(summary) {
  const w = summary.weight;
  if (!w) return null;
  const change3 = w.change_3d_kg.value != null
    ? t("summary.weight_change_3d", { change: signed(w.change_3d_kg.value, 1), baseline: w.baseline_3d_kg.toFixed(1) })
    : t("summary.weight_change_3d_none");
  const change7 = w.change_7d_kg.value != null
    ? t("summary.weight_change_7d", { change: signed(w.change_7d_kg.value, 1) }) : t("summary.weight_change_7d_none");
  // HF: more than 2 kg in 3 days is the sign of fluid to act on (ESC 2021 / CLINICAL H1).
  const gain = w.change_3d_kg.value != null && w.change_3d_kg.value > 2;
  return h("div", { id: "weight-change", class: gain ? "figure warn" : "figure" },
    h("p", {}, t("summary.weight_latest", { kg: w.latest_kg.toFixed(1) }), t("sep.clause"), change3, gain ? ` ${t("summary.weight_gain")}` : ""),
    h("p", { class: "note" }, change7));
}

const SEVERITY_CLASS = { P1: "s-danger", P2: "s-danger", P3: "s-warn", P4: "s-ok", SYS: "s-none" };
const STATE_KEY = { pending: "inbox.state.pending", firing: "inbox.state.firing", acknowledged: "inbox.state.acknowledged", resolved: "inbox.state.resolved" };

/** The patient's alerts, newest first, with the explanation in words (staff pages only). */
export async function alertHistory(patientId, zone) {
  let alerts;
  try {
    alerts = await get(`/patients/${encodeURIComponent(patientId)}/alerts`);
  } catch (error) {
    // A caller who may read the readings but not the alerts (the API says 403) sees none.
    if (error.status === 403 || error.status === 404) return null;
    throw error;
  }
  const lang = currentLanguage();
  return h("section", { id: "alert-history", "aria-labelledby": "alert-history-title" },
    h("h2", { id: "alert-history-title" }, t("history.title")),
    alerts.length
      ? h("table", {},
        h("thead", {}, h("tr", {}, ["history.opened", "history.severity", "history.what", "history.state", "history.by"].map((k) => h("th", { scope: "col" }, t(k))))),
        h("tbody", {}, alerts.slice(0, 50).map((a) => h("tr", { "data-alert": String(a.id) },
          h("td", {}, dateTime(a.opened_at, zone)),
          h("td", {}, h("span", { class: `pill ${SEVERITY_CLASS[a.severity] || "s-none"}` }, `${a.severity} ${t(`inbox.severity.${a.severity}`)}`)),
          h("td", {}, `${a.rule_id} · ${a.explanation[lang] || a.explanation["zh-CN"] || ""}`,
            a.confirmed ? "" : ` (${t("history.unconfirmed")})`, a.late ? ` (${t("history.late")})` : ""),
          h("td", {}, STATE_KEY[a.state] ? t(STATE_KEY[a.state]) : a.state),
          h("td", {}, a.acknowledged_by || "—")))))
      : h("p", { class: "note" }, t("history.none")));
}
