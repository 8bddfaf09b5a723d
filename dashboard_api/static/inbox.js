// The doctor's alert inbox: alerts of every patient she may see, newest first. New and
// changed alerts arrive on the live stream (the API tails the alert worker's records) and
// the page asks the API again at once — unless the doctor is typing a note, then a button
// says that there is news, so her words are not wiped. While the stream is down the page
// asks every POLL_MS instead.
import { get, post } from "./api.js";
import { h } from "./dom.js";
import { dateTime } from "./format.js";
import { currentLanguage, t } from "./i18n.js";
import { onLiveAlert, render, session } from "./app.js";
import { failureText, kindWord, statusWord, windowText } from "./visits_pages.js";

export const POLL_MS = 60000;
const REFRESH_DEBOUNCE_MS = 300;
const SEVERITY_CLASS = { P1: "s-danger", P2: "s-danger", P3: "s-warn", P4: "s-ok", SYS: "s-none" };
const OPEN_TASK = ["requested", "scheduled"];
let timer = null;
// The alerts whose detail is open: they stay open when the poll redraws the inbox.
const opened = new Set();
// What the last action said: the inbox redraws after it, and the words should stay.
let flash = "";

function visitLine(visit) {
  const outcome = [];
  if (visit.classification) outcome.push(t(`visits.class.${visit.classification === "controlled" ? "controlled" : "not_controlled"}`));
  if (visit.closing_reason) outcome.push(t("visits.closing_reason", { reason: visit.closing_reason }));
  if (visit.next_task) outcome.push(t("visits.next_task", { kind: kindWord(visit.next_task.kind), window: windowText(visit.next_task) }));
  return h("li", { "data-visit": String(visit.id) },
    h("span", { class: "visit-status" }, statusWord(visit.status)), " · ", kindWord(visit.kind), " · ", visit.code,
    " · ", t("visits.window"), " ", windowText(visit),
    visit.scheduled_at ? ` · ${t("visits.scheduled_at", { when: dateTime(visit.scheduled_at), who: visit.assignee || "—" })}` : "",
    outcome.length ? h("div", { class: "visit-outcome-line" }, `${t("visits.outcome.label")}: ${outcome.join(t("sep.clause"))}`) : null);
}

/** The alert's visit tasks and their outcome, or the buttons that ask for one. */
async function visitBlock(alert, message) {
  const detail = await get(`/patients/${encodeURIComponent(alert.patient_id)}/alerts/${alert.id}`);
  const create = (kind) => async () => {
    try {
      const made = await post(`/patients/${encodeURIComponent(alert.patient_id)}/visits`, { alert_id: alert.id, kind });
      flash = made.created
        ? t("visits.created", { kind: kindWord(made.task.kind), code: made.task.code })
        : t("visits.already_open", { kind: kindWord(made.task.kind), code: made.task.code });
      render();
    } catch (error) {
      message.textContent = failureText(error);
    }
  };
  // A resolved alert asks for nothing more (its visit's follow-up is a task of its own).
  const open = detail.visits.some((v) => OPEN_TASK.includes(v.status)) || !!detail.resolved_at;
  return h("div", { class: "alert-visits", id: `visits-of-${alert.id}` },
    h("h3", {}, t("visits.of_alert")),
    detail.visits.length ? h("ul", {}, detail.visits.map(visitLine)) : h("p", { class: "note" }, t("visits.none_for_alert")),
    open ? null : h("p", { class: "inline" },
      h("button", { type: "button", id: `create-home-${alert.id}`, onclick: create("home_visit") }, t("visits.create_home")),
      " ",
      h("button", { type: "button", class: "secondary", id: `create-phone-${alert.id}`, onclick: create("phone") }, t("visits.create_phone"))));
}

function actions(alert, message) {
  const note = h("input", { type: "text", id: `note-${alert.id}`, maxlength: "1000", "aria-label": t("inbox.note") });
  const act = async (path, body) => {
    try {
      await post(`/patients/${encodeURIComponent(alert.patient_id)}/alerts/${alert.id}/${path}`, body);
      render();
    } catch (error) {
      message.textContent = t("error.http", { status: error.status ?? 0 });
    }
  };
  const withNote = (path, extra = {}) => () => {
    const text = note.value.trim();
    if (!text) {
      message.textContent = t("inbox.note_needed");
      note.focus();
      return;
    }
    act(path, { ...extra, ...(path === "snooze" ? { reason: text } : { note: text }) });
  };
  const buttons = [];
  if (!alert.read && !alert.resolved_at) buttons.push(h("button", { type: "button", class: "secondary", onclick: () => act("read") }, t("inbox.mark_read")));
  if (alert.state === "firing") buttons.push(h("button", { type: "button", onclick: withNote("acknowledge") }, t("inbox.acknowledge")));
  if (!alert.resolved_at) {
    buttons.push(h("button", { type: "button", onclick: withNote("resolve") }, t("inbox.resolve")));
    buttons.push(h("button", { type: "button", class: "secondary", onclick: withNote("snooze", { minutes: 60 }) }, t("inbox.snooze")));
  }
  return alert.resolved_at ? [] : [h("label", {}, t("inbox.note"), " ", note), ...buttons];
}

/** The caller's alerts, with the unread filter and the actions a doctor takes on one. */
export async function inboxPage() {
  document.title = `${t("inbox.title")} · VitalGate`;
  const unread = new URLSearchParams(location.hash.split("?")[1] || "").get("unread") === "1";
  const alerts = await get(`/alerts${unread ? "?unread=true" : ""}`);
  const message = h("p", { role: "status", id: "inbox-message" }, flash);
  flash = "";
  const language = currentLanguage();
  const toggle = (alert) => h("button", { type: "button", class: "secondary", id: `detail-${alert.id}`, "aria-expanded": opened.has(alert.id) ? "true" : "false",
    onclick: () => {
      if (opened.has(alert.id)) opened.delete(alert.id);
      else opened.add(alert.id);
      render();
    } }, opened.has(alert.id) ? t("inbox.hide_detail") : t("inbox.detail"));
  const details = await Promise.all(alerts.map((alert) => (opened.has(alert.id) ? visitBlock(alert, message) : null)));
  const rows = alerts.map((alert, index) => [h("tr", { "data-alert": String(alert.id), class: alert.read ? "read" : "unread" },
    h("td", {}, h("span", { class: `pill ${SEVERITY_CLASS[alert.severity] || "s-none"}` }, `${alert.severity} ${t(`inbox.severity.${alert.severity}`)}`)),
    h("td", {}, h("a", { href: `#/patient/${encodeURIComponent(alert.patient_id)}` }, alert.patient_name || alert.patient_id)),
    h("td", { class: "explanation" }, alert.explanation[language] || alert.explanation.en, " ", h("span", { class: "note" }, `(${alert.rule_id} v${alert.rule_version})`)),
    h("td", {}, dateTime(alert.opened_at)),
    h("td", { class: "state" }, t(`inbox.state.${alert.state}`), alert.read ? "" : ` · ${t("inbox.unread")}`),
    h("td", {}, toggle(alert), " ", actions(alert, message))),
  details[index] ? h("tr", { class: "alert-detail", "data-detail": String(alert.id) }, h("td", { colspan: "6" }, details[index])) : null]);
  if (timer) clearInterval(timer);
  const shown = location.hash;
  timer = setInterval(() => {
    if (location.hash !== shown) clearInterval(timer);
    else if (!session.live) render();
  }, POLL_MS);
  const news = h("button", { type: "button", id: "inbox-news", hidden: "", onclick: () => render() }, t("inbox.news"));
  let pending = null;
  onLiveAlert(() => {
    const typing = [...document.querySelectorAll("#alert-inbox input")].some((input) => input.value.trim() || input === document.activeElement);
    if (typing) {
      news.hidden = false;
      return;
    }
    clearTimeout(pending);
    pending = setTimeout(() => { if (location.hash === shown) render(); }, REFRESH_DEBOUNCE_MS);
  });
  return h("section", {},
    h("h1", {}, t("inbox.title"), " ", h("span", { class: "note" }, t("inbox.count", { n: alerts.length }))),
    news,
    h("p", { class: "inline" },
      h("a", { href: unread ? "#/inbox" : "#/inbox?unread=1", id: "inbox-filter" }, unread ? t("inbox.show_all") : t("inbox.show_unread")),
      " ",
      h("button", { type: "button", class: "secondary", id: "mark-all-read", onclick: async () => {
        const { marked } = await post("/alerts/mark-all-read", {});
        message.textContent = t("inbox.marked", { n: marked });
        render();
      } }, t("inbox.mark_all_read"))),
    message,
    alerts.length
      ? h("table", { id: "alert-inbox" },
        h("thead", {}, h("tr", {}, ["severity", "patient", "explanation", "time", "state", "actions"].map((c) => h("th", { scope: "col" }, t(`inbox.col.${c}`))))),
        h("tbody", {}, rows))
      : h("p", { class: "note", id: "inbox-empty" }, t("inbox.empty")));
}
