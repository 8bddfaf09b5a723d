// What the admin, IT and audit pages share: who may open which page (the role matrix of
// docs/authorization.md, mirrored so the header shows only links that work), an API
// refusal in words, an inline confirmation before any change, sortable column headers.
import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { session } from "./app.js";

// The pages and the roles the API lets through (ROLE_MATRIX; the fleet: FLEET_ROLES).
export const PAGE_ROLES = {
  accounts: ["admin"],
  teams: ["admin"],
  contracts: ["admin"],
  audit: ["admin"],
  fleet: ["admin", "it_operator"],
  quarantine: ["it_operator"],
};

/** Whether the signed-in user may open ``page``. */
export const mayOpen = (page) => !!session.me && session.me.roles.some((r) => PAGE_ROLES[page].includes(r));

/** The API's reason for a refusal, as text (a string detail, or pydantic's list of errors). */
function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => `${(item.loc || []).slice(1).join(".")}: ${item.msg}`).join("; ");
  }
  return "";
}

/** An API error in words, with the API's own reason: 404, 409, 422, 403, others. */
export function refusal(error) {
  if (!(error instanceof ApiError)) return t("error.network");
  const detail = detailText(error.detail);
  const key = { 403: "admin.error.forbidden", 404: "admin.error.not_found", 409: "admin.error.conflict", 422: "admin.error.refused" }[error.status];
  return key ? t(key, { detail }) : t("error.http", { status: error.status });
}

/** A status line for an action's outcome (role=status: read out when it changes). */
export function messageLine(id) {
  const line = h("p", { role: "status", id, class: "admin-message" });
  line.say = (text, failed = false) => {
    line.className = failed ? "admin-message error" : "admin-message done";
    line.textContent = failed ? `⚠ ${text}` : `✓ ${text}`;
  };
  return line;
}

/**
 * Ask before a change: ``holder`` shows the question with Confirm and Cancel (Confirm has the
 * focus, Escape or Cancel leaves it); ``action`` runs on Confirm.
 */
export function confirmIn(holder, question, action, id = "confirm") {
  const close = () => holder.replaceChildren();
  const yes = h("button", { type: "button", id: `${id}-yes`, onclick: async () => { close(); await action(); } }, t("admin.confirm.yes"));
  const no = h("button", { type: "button", class: "secondary", id: `${id}-no`, onclick: close }, t("admin.confirm.no"));
  const box = h("div", { class: "confirm", role: "group", "aria-label": t("admin.confirm.label"),
    onkeydown: (event) => { if (event.key === "Escape") close(); } },
  h("p", {}, question), yes, " ", no);
  holder.replaceChildren(box);
  yes.focus();
}

/** A column header; with ``sort`` it is a button that sorts by ``key`` (aria-sort says how). */
export function columnHeader(label, sort, key) {
  if (!sort) return h("th", { scope: "col" }, label);
  const active = sort.key === key;
  const arrow = active ? (sort.ascending ? " ▲" : " ▼") : "";
  return h("th", { scope: "col", "aria-sort": active ? (sort.ascending ? "ascending" : "descending") : "none" },
    h("button", { type: "button", class: "sort", id: `sort-${key}`, onclick: () => sort.by(key) }, label, arrow));
}

/** The local day ``value`` (YYYY-MM-DD) starts, as an ISO instant; ``days`` later if given. */
export function dayStart(value, days = 0) {
  const date = new Date(`${value}T00:00:00`);
  date.setDate(date.getDate() + days);
  return date.toISOString();
}

/** Today as YYYY-MM-DD in the browser's zone. */
export function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
