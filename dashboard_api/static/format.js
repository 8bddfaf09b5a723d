// Values with their units, judged against targets in words and colour, and times in the
// patient's own time zone (24-hour clock, YYYY-MM-DD).
import { prefs, t } from "./i18n.js";

// 1 mmol/L of glucose = 18.0156 mg/dL (molar mass 180.156 g/mol), as readings/units.py.
export const MG_PER_DL_PER_MMOL = 18.0156;

// Consensus glucose bands in mmol/L (Battelino 2019; Asia-Pacific 2023 uses the same).
export const GLUCOSE = { veryLow: 3.0, low: 3.9, high: 10.0, veryHigh: 13.9 };
// Chinese home-BP threshold (China hypertension guideline: home mean >= 135/85 mmHg).
export const HOME_BP = { systolic: 135, diastolic: 85 };
// SpO2 below 94 % calls for attention in chronic patients at rest (China COPD guidance);
// below 90 % is hypoxaemia.
export const SPO2 = { low: 94, veryLow: 90 };
// Axillary temperature at or above 37.3 °C is a fever in Chinese clinical usage.
export const FEVER_C = 37.3;
// Resting heart rate outside 50–100 /min is worth a look (bradycardia/tachycardia).
export const HEART_RATE = { low: 50, high: 100 };

export const UNIT_LABEL = {
  "mmol/L": "mmol/L", "mg/dL": "mg/dL", "mm[Hg]": "mmHg", mmHg: "mmHg", kg: "kg", "%": "%",
  Cel: "°C", "°C": "°C",
};

export function unitLabel(unit) {
  if (unit === "/min" || unit === "1/min" || unit === "{beats}/min") return t("unit.per_min");
  return UNIT_LABEL[unit] || unit;
}

/** A glucose value (mmol/L) in the user's unit: one decimal for mmol/L, none for mg/dL. */
export function glucoseText(mmol) {
  if (prefs.glucoseUnit === "mg/dL") return `${Math.round(mmol * MG_PER_DL_PER_MMOL)} mg/dL`;
  return `${mmol.toFixed(1)} mmol/L`;
}

export const toDisplayGlucose = (mmol) =>
  prefs.glucoseUnit === "mg/dL" ? mmol * MG_PER_DL_PER_MMOL : mmol;
export const fromDisplayGlucose = (value) =>
  prefs.glucoseUnit === "mg/dL" ? value / MG_PER_DL_PER_MMOL : value;

/** The glucose target band (mmol/L) from the patient's targets, else the consensus band. */
export function glucoseBand(targets) {
  const target = (targets || []).find((item) => item.metric === "glucose");
  return {
    low: target && target.low != null ? target.low : GLUCOSE.low,
    high: target && target.high != null ? target.high : GLUCOSE.high,
  };
}

/**
 * A reading judged: {text, state, word} where state is ok | warn | danger | none and word
 * is the status in words ("在目标范围内"), so colour never carries the meaning alone.
 */
export function judge(kind, values, targets) {
  const v = values;
  if ((kind === "glucose" || kind === "cgm_glucose") && v.glucose != null) {
    const band = glucoseBand(targets);
    const text = glucoseText(v.glucose);
    if (v.glucose < GLUCOSE.veryLow) return { text, state: "danger", word: t("state.very_low") };
    if (v.glucose < band.low) return { text, state: "danger", word: t("state.low") };
    if (v.glucose > GLUCOSE.veryHigh) return { text, state: "danger", word: t("state.very_high") };
    if (v.glucose > band.high) return { text, state: "warn", word: t("state.high") };
    return { text, state: "ok", word: t("state.in_target") };
  }
  if (kind === "blood_pressure" && v.systolic != null) {
    let text = `${Math.round(v.systolic)}/${Math.round(v.diastolic)} mmHg`;
    if (v.pulse != null) text += ` · ${Math.round(v.pulse)} ${t("unit.per_min")}`;
    const high = v.systolic >= HOME_BP.systolic || v.diastolic >= HOME_BP.diastolic;
    return high
      ? { text, state: "warn", word: t("state.bp_high") }
      : { text, state: "ok", word: t("state.bp_ok") };
  }
  if (kind === "spo2" && v.spo2 != null) {
    const text = `${Math.round(v.spo2)} %`;
    if (v.spo2 < SPO2.veryLow) return { text, state: "danger", word: t("state.spo2_very_low") };
    if (v.spo2 < SPO2.low) return { text, state: "warn", word: t("state.spo2_low") };
    return { text, state: "ok", word: t("state.normal") };
  }
  if (kind === "body_temperature" && v.temperature != null) {
    const text = `${v.temperature.toFixed(1)} °C`;
    return v.temperature >= FEVER_C
      ? { text, state: "warn", word: t("state.fever") }
      : { text, state: "ok", word: t("state.normal") };
  }
  if (kind === "heart_rate" && v.heart_rate != null) {
    const text = `${Math.round(v.heart_rate)} ${t("unit.per_min")}`;
    const out = v.heart_rate < HEART_RATE.low || v.heart_rate > HEART_RATE.high;
    return out
      ? { text, state: "warn", word: t("state.hr_out") }
      : { text, state: "ok", word: t("state.normal") };
  }
  if (kind === "weight" && v.weight != null) {
    return { text: `${v.weight.toFixed(1)} kg`, state: "none", word: t("state.recorded") };
  }
  return { text: "—", state: "none", word: "" };
}

function parts(date, zone, options) {
  const out = {};
  for (const part of new Intl.DateTimeFormat("en-GB", { timeZone: zone, hourCycle: "h23", ...options }).formatToParts(date)) {
    out[part.type] = part.value;
  }
  return out;
}

/** "2026-03-02 08:30" in ``zone``. */
export function dateTime(value, zone) {
  const p = parts(new Date(value), zone, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/** "03-02" in ``zone`` (chart axes). */
export function shortDate(value, zone) {
  const p = parts(new Date(value), zone, { month: "2-digit", day: "2-digit" });
  return `${p.month}-${p.day}`;
}

/** "08:30" in ``zone``. */
export function clock(value, zone) {
  const p = parts(new Date(value), zone, { hour: "2-digit", minute: "2-digit" });
  return `${p.hour}:${p.minute}`;
}

/** "3 天前" / "2 h ago": how long since ``value``. */
export function ago(value, now = Date.now()) {
  const minutes = Math.max(0, Math.round((now - new Date(value).getTime()) / 60000));
  if (minutes < 60) return t("ago.minutes", { n: minutes });
  const hours = Math.round(minutes / 60);
  if (hours < 48) return t("ago.hours", { n: hours });
  return t("ago.days", { n: Math.floor(hours / 24) });
}

/** Whole days since ``value``. */
export const daysSince = (value, now = Date.now()) =>
  Math.floor((now - new Date(value).getTime()) / 86400000);

/**
 * Time in ranges from glucose values (mmol/L), as fractions of readings: very_low < 3.0,
 * low 3.0–<band.low, target band.low–band.high, high >band.high–13.9, very_high > 13.9.
 */
export function timeInRanges(values, band) {
  const counts = { very_low: 0, low: 0, target: 0, high: 0, very_high: 0 };
  for (const g of values) {
    if (g < GLUCOSE.veryLow) counts.very_low += 1;
    else if (g < band.low) counts.low += 1;
    else if (g <= band.high) counts.target += 1;
    else if (g <= GLUCOSE.veryHigh) counts.high += 1;
    else counts.very_high += 1;
  }
  const total = values.length;
  const out = {};
  for (const [key, n] of Object.entries(counts)) out[key] = total ? n / total : 0;
  return { fractions: out, total };
}
