// Population triage (TIDE extended beyond CGM): the doctor's patients in buckets of
// priority, each bucket's rule in words, the data issues apart, "mark reviewed" with a
// same-day undo and "copy as text" for the hospital EMR. The API judges everything
// (reports.triage); this page only shows it, sorts it and sends the review clicks.
import { del, get, post } from "./api.js";
import { h } from "./dom.js";
import { currentLanguage, listOf, t } from "./i18n.js";

const state = { team: "", tag: "", condition: "", periodDays: "14", hideReviewed: false, sort: "priority", dir: 1 };
const SEVERE = new Set(["cgm_very_low", "meter_very_low", "cgm_low", "meter_low", "weight_gain", "spo2_low"]);

const num = (value) => (Number.isInteger(value) ? String(value) : value.toFixed(1));

/** ``+3.2`` / ``−15.0`` / ``±0.0``: the sign is always written (not carried by colour). */
export function signed(value) {
  if (value === 0) return "±0.0";
  return `${value > 0 ? "+" : "−"}${Math.abs(value).toFixed(1)}`;
}

function unitWord(unit) {
  return { events: t("triage.unit.events"), readings: t("triage.unit.readings"), "readings/day": t("triage.unit.per_day"),
    pp: t("triage.unit.pp"), days: t("triage.unit.days"), h: t("triage.unit.hours") }[unit] ?? unit ?? "";
}

function reasonText(reason, labels) {
  const value = reason.second === null ? num(reason.value) : `${num(reason.value)}/${num(reason.second)}`;
  return `${labels[reason.bucket][currentLanguage()] || labels[reason.bucket].en}: ${value} ${unitWord(reason.unit)}`;
}

function changesText(changes) {
  const parts = [];
  if (changes.tir_points !== null) parts.push(`TIR ${signed(changes.tir_points)} ${t("triage.unit.pp")}`);
  if (changes.meter_in_target_points !== null) parts.push(`${t("triage.change.in_target")} ${signed(changes.meter_in_target_points)} ${t("triage.unit.pp")}`);
  if (changes.bp_systolic_mmhg !== null && changes.bp_diastolic_mmhg !== null) {
    parts.push(`${t("triage.change.bp")} ${signed(changes.bp_systolic_mmhg)}/${signed(changes.bp_diastolic_mmhg)} mmHg`);
  }
  return parts.length ? parts.join(t("triage.sep")) : "—";
}

function issueText(issue, labels) {
  let text = labels[issue.kind][currentLanguage()] || labels[issue.kind].en;
  if (issue.kind === "not_measured" && issue.value === null) text += `: ${t("triage.never")}`;
  else if (issue.value !== null) text += `: ${num(issue.value)} ${unitWord(issue.unit)}`;
  return issue.subject ? `${text} (${issue.subject})` : text;
}

const name = (entry) => entry.display_name || entry.patient_id;
const mainChange = (e) => e.changes.tir_points ?? e.changes.meter_in_target_points ?? e.changes.bp_systolic_mmhg ?? 0;
const SORTERS = {
  priority: () => 0,
  name: (a, b) => name(a).localeCompare(name(b), "zh-CN"),
  figure: (a, b) => (a.reasons[0]?.value ?? 0) - (b.reasons[0]?.value ?? 0),
  change: (a, b) => mainChange(a) - mainChange(b),
  place: (a, b) => (a.village || a.community || "").localeCompare(b.village || b.community || "", "zh-CN"),
};

function query() {
  const params = new URLSearchParams({ period_days: state.periodDays, lang: currentLanguage() === "en" ? "en" : "zh-CN" });
  for (const key of ["team", "tag", "condition"]) if (state[key]) params.set(key, state[key]);
  return params.toString();
}

function copyBox(text, message) {
  const area = h("textarea", { id: "triage-text", readonly: true, rows: "12", "aria-label": t("triage.text_label") }, text);
  const wrapper = h("div", { id: "triage-copy-fallback", hidden: true },
    h("p", { class: "note" }, t("triage.copy_fallback")), area);
  const button = h("button", { type: "button", class: "secondary", id: "triage-copy", onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      message.textContent = t("triage.copied");
    } catch {
      message.textContent = t("triage.copy_failed");
    }
    // The text is shown as well: some intranet browsers refuse the clipboard without HTTPS.
    wrapper.hidden = false;
    area.focus();
    area.select();
  } }, t("triage.copy"));
  return [button, wrapper];
}

function filters(data, reload) {
  const select = (id, key, label, options) => h("label", { for: id }, label,
    h("select", { id, onchange: async (e) => {
      state[key] = e.target.value;
      await reload();
      document.getElementById(id)?.focus(); // the form was redrawn: keep the keyboard's place
    } },
      options.map(([value, text]) => h("option", { value, selected: state[key] === value }, text))));
  const all = ["", t("list.all")];
  return h("form", { class: "inline", id: "triage-filters", onsubmit: (e) => e.preventDefault() },
    select("triage-team", "team", t("triage.filter.team"), [all, ...data.choices.teams.map((c) => [c, c])]),
    select("triage-tag", "tag", t("triage.filter.tag"), [all, ...data.choices.tags.map((c) => [c, c])]),
    select("triage-condition", "condition", t("triage.filter.condition"), [all, ...data.choices.conditions.map((c) => [c, t(`condition.${c}`)])]),
    select("triage-period", "periodDays", t("triage.filter.period"), [["14", t("triage.days", { n: 14 })], ["28", t("triage.days", { n: 28 })]]),
    h("label", { class: "check" }, h("input", { type: "checkbox", id: "triage-hide-reviewed", checked: state.hideReviewed,
      onchange: async (e) => {
        state.hideReviewed = e.target.checked;
        await reload();
        document.getElementById("triage-hide-reviewed")?.focus();
      } }), " ", t("triage.hide_reviewed")));
}

function reviewCell(entry, message, reload) {
  const path = `/triage/${encodeURIComponent(entry.patient_id)}/reviewed`;
  const act = async (call, done) => {
    try {
      await call();
      await reload();
      message.textContent = done;
      message.focus(); // the row moved: say what happened where the keyboard is
    } catch (error) {
      message.textContent = error.status === 409 ? t("triage.undo_too_late") : t("error.http", { status: error.status ?? 0 });
    }
  };
  if (entry.reviewed_by) {
    return [h("span", { class: "pill s-ok" }, `✓ ${t("triage.reviewed_by", { who: entry.reviewed_by })}`), " ",
      h("button", { type: "button", class: "secondary", "data-undo": entry.patient_id,
        onclick: () => act(() => del(path), t("triage.undone", { name: name(entry) })) }, t("triage.undo"))];
  }
  return h("button", { type: "button", "data-review": entry.patient_id,
    onclick: () => act(() => post(path, { period_days: Number(state.periodDays) }), t("triage.marked", { name: name(entry) })) },
  t("triage.mark_reviewed"));
}

function bucketTable(bucket, entries, labels, message, reload, redraw) {
  const sortHead = (key, label) => h("th", { scope: "col", "aria-sort": state.sort === key ? (state.dir > 0 ? "ascending" : "descending") : "none" },
    h("button", { type: "button", class: "sort", "data-sort": key, onclick: () => {
      state.dir = state.sort === key ? -state.dir : 1;
      state.sort = key;
      redraw();
    } }, label));
  const rows = [...entries].sort((a, b) => state.dir * SORTERS[state.sort](a, b) || 0);
  return h("section", { class: "triage-bucket", "data-bucket": bucket.id, "aria-labelledby": `bucket-${bucket.id}` },
    h("h2", { id: `bucket-${bucket.id}` },
      h("span", { class: `pill ${SEVERE.has(bucket.id) ? "s-danger" : bucket.id === "meeting_targets" ? "s-ok" : "s-warn"}` }, `${bucket.priority + 1}`), " ",
      bucket.label[currentLanguage()] || bucket.label.en, " ", h("span", { class: "note" }, t("triage.count", { n: bucket.count }))),
    h("table", { class: "triage-table" },
      h("thead", {}, h("tr", {},
        sortHead("name", t("triage.col.patient")),
        sortHead("figure", t("triage.col.reasons")),
        sortHead("change", t("triage.col.change")),
        sortHead("place", t("triage.col.place")),
        h("th", { scope: "col" }, t("triage.col.review")))),
      h("tbody", {}, rows.map((entry) => h("tr", { "data-patient": entry.patient_id, class: entry.reviewed_by ? "reviewed" : "" },
        h("td", {}, h("a", { href: `#/patient/${encodeURIComponent(entry.patient_id)}` }, name(entry)),
          h("div", { class: "note" }, listOf(entry.conditions.map((c) => t(`condition.${c}`))))),
        h("td", {}, entry.reasons.length
          ? h("ul", { class: "reasons" }, entry.reasons.map((r) => h("li", {}, reasonText(r, labels))))
          : t("triage.no_rule")),
        h("td", { class: "change" }, changesText(entry.changes)),
        h("td", {}, [entry.community, entry.village].filter(Boolean).join(" · ") || "—"),
        h("td", {}, reviewCell(entry, message, reload)))))));
}

/** The doctor's triage page. */
export async function triagePage() {
  document.title = `${t("triage.title")} · VitalGate`;
  const root = h("section", { id: "triage" });
  const message = h("p", { role: "status", id: "triage-message", tabindex: "-1" });
  const load = async () => {
    const data = await get(`/triage?${query()}`);
    const labels = Object.fromEntries(data.buckets.map((b) => [b.id, b.label]));
    const body = h("div", { id: "triage-body" });
    const redraw = () => {
      const entries = data.prioritised.filter((e) => !(state.hideReviewed && e.reviewed_by));
      const sections = data.buckets
        .map((bucket) => [bucket, entries.filter((e) => e.bucket === bucket.id)])
        .filter(([, members]) => members.length)
        .map(([bucket, members]) => bucketTable(bucket, members, labels, message, load, redraw));
      body.replaceChildren(...sections);
      if (!sections.length) body.append(h("p", { class: "note", id: "triage-empty" }, t("triage.empty")));
      if (data.prioritised_beyond_cap) body.append(h("p", { class: "note", id: "triage-beyond" }, t("triage.beyond", { n: data.prioritised_beyond_cap })));
    };
    redraw();
    const summary = h("ol", { id: "triage-buckets", class: "triage-summary" }, data.buckets.map((b) =>
      h("li", { "data-bucket": b.id }, `${b.label[currentLanguage()] || b.label.en} — `, h("strong", {}, t("triage.count", { n: b.count })))));
    const issues = h("section", { id: "triage-issues", "aria-labelledby": "triage-issues-title" },
      h("h2", { id: "triage-issues-title" }, t("triage.issues"), " ", h("span", { class: "note" }, t("triage.count", { n: data.data_issues_total }))),
      data.data_issues.length
        ? h("table", {},
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("triage.col.patient")), h("th", { scope: "col" }, t("triage.col.issues")))),
          h("tbody", {}, data.data_issues.map((p) => h("tr", { "data-patient": p.patient_id },
            h("td", {}, h("a", { href: `#/patient/${encodeURIComponent(p.patient_id)}` }, name(p))),
            h("td", {}, h("ul", { class: "reasons" }, p.issues.map((i) => h("li", {}, issueText(i, data.data_issue_labels)))))))))
        : h("p", { class: "note" }, t("triage.no_issues")),
      data.data_issues_beyond_cap ? h("p", { class: "note" }, t("triage.beyond", { n: data.data_issues_beyond_cap })) : null,
      data.paused_total ? h("p", { class: "note", id: "triage-paused" }, t("triage.paused", { n: data.paused_total })) : null);
    root.replaceChildren(
      h("h1", {}, t("triage.title")),
      h("p", { class: "note", id: "triage-period" }, t("triage.period", { first: data.period_first, last: data.period_last, pfirst: data.previous_first, plast: data.previous_last })),
      filters(data, load),
      h("p", { class: "inline" }, ...copyBox(data.text, message)),
      message,
      h("details", { open: true }, h("summary", {}, t("triage.rules")), summary),
      body,
      issues);
  };
  await load();
  return root;
}
