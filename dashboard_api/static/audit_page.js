// The audit viewer (#/audit, admins): who did what to whose data, filtered by actor,
// patient id, action, outcome and days; newest first, paged by seq (the log grows while it
// is read, so "older" continues below the last row shown); and "verify chain", which says
// whether the hash chain is intact up to its newest row or where it breaks.
import { get } from "./api.js";
import { h } from "./dom.js";
import { dateTime } from "./format.js";
import { t } from "./i18n.js";
import { notFoundPage } from "./app.js";
import { columnHeader, dayStart, mayOpen, messageLine, refusal } from "./admin_ui.js";

const PAGE = 50;
const OUTCOMES = ["ok", "rejected", "denied"];
const FILTERS = ["actor", "patient_id", "action", "outcome", "since", "until", "before"];

const outcomeWord = (outcome) => (OUTCOMES.includes(outcome) ? t(`audit.outcome.${outcome}`) : outcome);
const OUTCOME_CSS = { ok: "s-ok", rejected: "s-warn", denied: "s-danger" };
const OUTCOME_SYMBOL = { ok: "✓", rejected: "!", denied: "✕" };

function filtersOf(hash) {
  const query = new URLSearchParams(hash.split("?")[1] || "");
  const out = {};
  for (const name of FILTERS) if (query.get(name)) out[name] = query.get(name);
  return out;
}

function hashOf(filters) {
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
  const text = query.toString();
  return text ? `#/audit?${text}` : "#/audit";
}

function apiQuery(filters) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const name of ["actor", "patient_id", "action", "outcome"]) if (filters[name]) query.set(name, filters[name]);
  if (filters.since) query.set("since", dayStart(filters.since));
  if (filters.until) query.set("until", dayStart(filters.until, 1)); // the whole last day
  if (filters.before) query.set("before_seq", filters.before);
  return query.toString();
}

/** The verification in words: intact up to seq N, or broken at seq M with each problem. */
export function verifyWords(result) {
  if (result.intact) return { text: t("audit.verify.intact", { seq: result.rows }), failed: false, problems: [] };
  return { text: t("audit.verify.broken", { seq: result.first_broken_seq ?? "?", n: result.problems.length }), failed: true, problems: result.problems };
}

function verifyBlock() {
  const out = h("div", { id: "verify-result", role: "status" });
  const run = async () => {
    out.replaceChildren(h("p", { class: "loading" }, t("audit.verify.running")));
    try {
      const said = verifyWords(await get("/audit/verify"));
      const words = h("p", { class: `pill ${said.failed ? "s-danger" : "s-ok"}`, id: "verify-words" }, `${said.failed ? "✕" : "✓"} ${said.text}`);
      out.replaceChildren(words, ...(said.problems.length ? [h("ul", { id: "verify-problems" }, said.problems.map((p) => h("li", {}, p)))] : []));
    } catch (error) {
      out.replaceChildren(h("p", { class: "error" }, refusal(error)));
    }
  };
  return h("section", { "aria-labelledby": "verify-title" },
    h("h2", { id: "verify-title" }, t("audit.verify.title")),
    h("p", { class: "note" }, t("audit.verify.intro")),
    h("button", { type: "button", id: "verify-chain", onclick: run }, t("audit.verify.button")),
    out);
}

function filterForm(filters) {
  const field = (name, label, attrs = {}) => h("label", { for: `audit-${name}` }, label,
    h("input", { id: `audit-${name}`, name, value: filters[name] || "", autocomplete: "off", ...attrs }));
  const form = h("form", { class: "inline", id: "audit-filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const name of ["actor", "patient_id", "action", "outcome", "since", "until"]) next[name] = String(data.get(name) || "").trim();
    location.hash = hashOf(next);
  } },
  field("actor", t("audit.actor"), { maxlength: "128" }),
  field("patient_id", t("audit.patient"), { maxlength: "64" }),
  field("action", t("audit.action"), { maxlength: "64", placeholder: "GET /api/v1/patients/{patient_id}" }),
  h("label", { for: "audit-outcome" }, t("audit.outcome"),
    h("select", { id: "audit-outcome", name: "outcome" },
      h("option", { value: "" }, t("audit.any")),
      OUTCOMES.map((o) => h("option", { value: o, selected: filters.outcome === o }, outcomeWord(o))))),
  field("since", t("audit.since"), { type: "date" }),
  field("until", t("audit.until"), { type: "date" }),
  h("button", { type: "submit", id: "audit-apply" }, t("audit.apply")),
  h("a", { href: "#/audit", id: "audit-clear" }, t("audit.clear")));
  return form;
}

/** #/audit: the filtered log, newest first, and the chain's verification. */
export async function auditPage() {
  if (!mayOpen("audit")) return notFoundPage();
  document.title = `${t("audit.title")} · VitalGate`;
  const filters = filtersOf(location.hash);
  const message = messageLine("audit-message");
  let page = { data: [], next_before_seq: null };
  try {
    page = await get(`/audit?${apiQuery(filters)}`);
  } catch (error) {
    message.say(refusal(error), true);
  }
  const newer = { ...filters };
  delete newer.before;
  return h("section", { id: "audit-page" },
    h("h1", {}, t("audit.title")),
    filterForm(filters),
    message,
    h("table", { id: "audit-table" },
      h("caption", {}, filters.before ? t("audit.caption_before", { seq: filters.before }) : t("audit.caption")),
      h("thead", {}, h("tr", {}, columnHeader(t("audit.seq")), columnHeader(t("audit.at")), columnHeader(t("audit.actor")),
        columnHeader(t("audit.action")), columnHeader(t("audit.patients")), columnHeader(t("audit.outcome")), columnHeader(t("audit.detail")))),
      h("tbody", {}, page.data.length ? page.data.map((row) => h("tr", { "data-seq": String(row.seq) },
        h("th", { scope: "row" }, String(row.seq)),
        h("td", {}, dateTime(row.at)),
        h("td", {}, row.actor, h("div", { class: "note" }, row.actor_role)),
        h("td", {}, h("code", { class: "wrap" }, row.action)),
        h("td", {}, row.patient_ids.join(", ") || "—"),
        h("td", {}, h("span", { class: `pill ${OUTCOME_CSS[row.outcome] || "s-none"}` }, `${OUTCOME_SYMBOL[row.outcome] || ""} ${outcomeWord(row.outcome)}`)),
        h("td", {}, h("code", { class: "wrap detail" }, JSON.stringify(row.detail)))))
        : h("tr", {}, h("td", { colspan: "7", class: "note" }, t("audit.none"))))),
    h("nav", { class: "inline pager", "aria-label": t("admin.pages") },
      filters.before ? h("a", { href: hashOf(newer), id: "audit-newest" }, t("audit.newest")) : null, " ",
      page.next_before_seq ? h("a", { href: hashOf({ ...filters, before: String(page.next_before_seq) }), id: "audit-older" }, t("audit.older")) : null),
    verifyBlock());
}
