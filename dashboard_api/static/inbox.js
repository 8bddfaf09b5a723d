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

export const POLL_MS = 60000;
const REFRESH_DEBOUNCE_MS = 300;
const SEVERITY_CLASS = { P1: "s-danger", P2: "s-danger", P3: "s-warn", P4: "s-ok", SYS: "s-none" };
let timer = null;

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
  const message = h("p", { role: "status", id: "inbox-message" });
  const language = currentLanguage();
  const rows = alerts.map((alert) => h("tr", { "data-alert": String(alert.id), class: alert.read ? "read" : "unread" },
    h("td", {}, h("span", { class: `pill ${SEVERITY_CLASS[alert.severity] || "s-none"}` }, `${alert.severity} ${t(`inbox.severity.${alert.severity}`)}`)),
    h("td", {}, h("a", { href: `#/patient/${encodeURIComponent(alert.patient_id)}` }, alert.patient_name || alert.patient_id)),
    h("td", { class: "explanation" }, alert.explanation[language] || alert.explanation.en, " ", h("span", { class: "note" }, `(${alert.rule_id} v${alert.rule_version})`)),
    h("td", {}, dateTime(alert.opened_at)),
    h("td", { class: "state" }, t(`inbox.state.${alert.state}`), alert.read ? "" : ` · ${t("inbox.unread")}`),
    h("td", {}, actions(alert, message))));
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
