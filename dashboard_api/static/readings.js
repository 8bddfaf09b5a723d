// Fetching and drawing a patient's readings: shared by the doctor's patient page and the
// portal.
import { get } from "./api.js";
import { h } from "./dom.js";
import { lineChart } from "./charts.js";
import {
  GLUCOSE, HOME_BP, MG_PER_DL_PER_MMOL, dateTime, glucoseBand, judge, timeInRanges, unitLabel,
} from "./format.js";
import { prefs, t } from "./i18n.js";
import { bpMeanText, weightText } from "./patient_summary.js";

export const KINDS = ["glucose", "cgm_glucose", "blood_pressure", "weight", "spo2", "heart_rate", "body_temperature"];
const FIELD = { glucose: "glucose", cgm_glucose: "glucose", weight: "weight", spo2: "spo2", heart_rate: "heart_rate", body_temperature: "temperature" };

/** Every kind's series over the last ``days`` days, glucose in the user's unit. */
export async function fetchSeries(patientId, days) {
  const end = new Date(Date.now() + 60000);
  const start = new Date(end.getTime() - days * 86400000);
  const query = (kind) => `/patients/${encodeURIComponent(patientId)}/readings?kind=${kind}` +
    `&start=${encodeURIComponent(start.toISOString())}&end=${encodeURIComponent(end.toISOString())}` +
    `&points=500&glucose_unit=${encodeURIComponent(prefs.glucoseUnit)}`;
  const all = await Promise.all(KINDS.map((kind) => get(query(kind))));
  return { start: start.getTime(), end: end.getTime(), byKind: Object.fromEntries(KINDS.map((k, i) => [k, all[i]])) };
}

const toMmol = (value) => (prefs.glucoseUnit === "mg/dL" ? value / MG_PER_DL_PER_MMOL : value);
const fromMmol = (value) => (prefs.glucoseUnit === "mg/dL" ? value * MG_PER_DL_PER_MMOL : value);

function points(series, field) {
  return series.points.filter((p) => p.values[field] != null).map((p) => ({ t: new Date(p.t).getTime(), v: p.values[field] }));
}

/**
 * The TIR bar with its legend in words and percentages: computed from the readings, or
 * ``given`` ({fractions, total, band}) — the server's CGM figures, because a long CGM period
 * reaches the page as window means, whose shares would hide the lows.
 */
export function tirBar(series, band, given = null) {
  const mmol = series.flatMap((one) => one.points.map((p) => toMmol(p.values.glucose)).filter((v) => v != null && !Number.isNaN(v)));
  const { fractions, total } = given || timeInRanges(mmol, band);
  if (given) band = given.band;
  const order = ["very_high", "high", "target", "low", "very_low"];
  const bar = h("div", { class: "tir", role: "img", "aria-label": t("tir.title") });
  for (const key of [...order].reverse()) {
    const span = h("span", { class: key, title: t(`tir.${key}`) });
    span.style.width = `${(fractions[key] * 100).toFixed(1)}%`;
    bar.append(span);
  }
  const range = (key) => ({
    very_high: `> ${fromMmol(GLUCOSE.veryHigh).toFixed(1)}`,
    high: `${fromMmol(band.high).toFixed(1)}–${fromMmol(GLUCOSE.veryHigh).toFixed(1)}`,
    target: `${fromMmol(band.low).toFixed(1)}–${fromMmol(band.high).toFixed(1)}`,
    low: `${fromMmol(GLUCOSE.veryLow).toFixed(1)}–${fromMmol(band.low).toFixed(1)}`,
    very_low: `< ${fromMmol(GLUCOSE.veryLow).toFixed(1)}`,
  })[key];
  return h("div", { class: "tir-block", id: "tir" },
    h("h3", {}, t("tir.title"), " ", h("span", { class: "note" }, t("tir.basis", { n: total }))),
    given ? h("p", { class: "note", id: "tir-cgm" }, t("tir.cgm_consensus")) : null,
    bar,
    h("ul", { class: "tir-legend" }, order.map((key) => h("li", { "data-range": key },
      `${t(`tir.${key}`)} (${range(key)} ${prefs.glucoseUnit}): ${(fractions[key] * 100).toFixed(0)}%`))));
}

/**
 * The charts of every kind that has readings; with ``summary`` (GET …/summary) the BP chart
 * also draws the 7-day home mean and the weight chart the weight 3 days earlier.
 */
export function charts(data, targets, zone, summary = null) {
  const out = [];
  const { start, end, byKind } = data;
  const band = glucoseBand(targets);
  const glucose = ["glucose", "cgm_glucose"].map((k) => byKind[k]).filter((s) => s.points.length);
  if (glucose.length) {
    out.push(h("section", { id: "chart-glucose" },
      h("h2", {}, `${t("kind.glucose")} (${prefs.glucoseUnit})`),
      lineChart({ title: `${t("kind.glucose")} ${prefs.glucoseUnit}`, start, end, zone,
        series: glucose.map((s) => ({ points: points(s, "glucose") })),
        band: { low: fromMmol(band.low), high: fromMmol(band.high) } }),
      h("p", { class: "note" }, t("chart.band", { low: fromMmol(band.low).toFixed(1), high: fromMmol(band.high).toFixed(1), unit: prefs.glucoseUnit })),
      tirBar(glucose, band, cgmTir(byKind, summary))));
  }
  const bp = byKind.blood_pressure;
  if (bp.points.length) {
    out.push(h("section", { id: "chart-blood_pressure" },
      h("h2", {}, `${t("kind.blood_pressure")} (mmHg)`),
      lineChart({ title: `${t("kind.blood_pressure")} mmHg`, start, end, zone,
        series: [{ points: points(bp, "systolic") }, { points: points(bp, "diastolic") }],
        lines: [{ v: HOME_BP.systolic, label: "135 mmHg" }, { v: HOME_BP.diastolic, label: "85 mmHg" }, ...bpMeanLines(summary)] }),
      h("p", { class: "note" }, t("chart.bp_lines")),
      bpMeanLines(summary).length ? h("p", { class: "note" }, t("chart.bp_mean")) : null,
      summary ? bpMeanText(summary) : null));
  }
  for (const kind of ["weight", "spo2", "heart_rate", "body_temperature"]) {
    const series = byKind[kind];
    if (!series.points.length) continue;
    const unit = unitLabel(series.units[FIELD[kind]] || "");
    const baseline = kind === "weight" && summary?.weight?.baseline_3d_kg != null ? summary.weight.baseline_3d_kg : null;
    out.push(h("section", { id: `chart-${kind}` },
      h("h2", {}, `${t(`kind.${kind}`)} (${unit})`),
      lineChart({ title: `${t(`kind.${kind}`)} ${unit}`, start, end, zone, series: [{ points: points(series, FIELD[kind]) }],
        lines: baseline != null ? [{ v: baseline, label: `${baseline.toFixed(1)} kg`, kind: "mean" }] : [] }),
      baseline != null ? h("p", { class: "note" }, t("chart.weight_baseline", { kg: baseline.toFixed(1) })) : null,
      kind === "weight" && summary ? weightText(summary) : null));
  }
  if (!out.length) out.push(h("p", { class: "note" }, t("chart.none")));
  return out;
}

/** The CGM time in ranges of the summary (consensus ranges), when it has them. */
function cgmTir(byKind, summary) {
  const tir = summary?.cgm?.time_in_ranges_percent;
  if (!byKind.cgm_glucose.points.length || !tir || tir.target.value == null) return null;
  const fractions = Object.fromEntries(Object.entries(tir).map(([key, figure]) => [key, figure.value / 100]));
  return { fractions, total: summary.cgm.readings, band: { low: GLUCOSE.low, high: GLUCOSE.high } };
}

function bpMeanLines(summary) {
  const bp = summary?.blood_pressure;
  if (!bp || bp.home_mean_systolic.value == null) return [];
  const sys = Math.round(bp.home_mean_systolic.value), dia = Math.round(bp.home_mean_diastolic.value);
  return [{ v: sys, label: `${t("chart.mean_label")} ${sys}`, kind: "mean" }, { v: dia, label: `${t("chart.mean_label")} ${dia}`, kind: "mean" }];
}

function valuesInMmol(kind, values) {
  if ((kind === "glucose" || kind === "cgm_glucose") && values.glucose != null) {
    return { ...values, glucose: toMmol(values.glucose) };
  }
  return values;
}

/** The readings table (the charts' table alternative) with provenance. */
export function readingsTable(data, targets, zone) {
  const rows = [];
  for (const kind of KINDS) {
    for (const point of data.byKind[kind].points) rows.push({ kind, point });
  }
  rows.sort((a, b) => new Date(b.point.t) - new Date(a.point.t));
  const flagText = (point) => [
    ...point.flags.map((flag) => t(`flag.${flag}`)),
    point.clock_corrected ? t("flag.clock_corrected") : null,
    point.manual ? t("flag.manual") : null,
    point.count > 1 ? t("flag.window", { n: point.count }) : null,
  ].filter((x, i, all) => x && all.indexOf(x) === i);
  return h("table", { id: "readings-table" },
    h("caption", { class: "note" }, t("table.caption", { zone })),
    h("thead", {}, h("tr", {}, ["table.time", "table.kind", "table.value", "table.state", "table.device", "table.flags"].map((k) => h("th", { scope: "col" }, t(k))))),
    h("tbody", {}, rows.slice(0, 200).map(({ kind, point }) => {
      const judged = judge(kind, valuesInMmol(kind, point.values), targets);
      return h("tr", {},
        h("td", {}, dateTime(point.t, zone)),
        h("td", {}, t(`kind.${kind}`)),
        h("td", {}, judged.text),
        h("td", {}, h("span", { class: `pill s-${judged.state}` }, judged.word)),
        h("td", {}, point.device_id || "—"),
        h("td", {}, flagText(point).map((f) => h("span", { class: "pill" }, f))));
    })));
}

/** A latest reading in words: "血糖 5.6 mmol/L，在目标范围内". */
export function latestInWords(reading, targets) {
  const judged = judge(reading.kind, reading.values, targets);
  return { judged, sentence: t("latest.sentence", { kind: t(`kind.${reading.kind}`), value: judged.text, state: judged.word }) };
}
