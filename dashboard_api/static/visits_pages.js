// The nurse's visit queue (#/visits): open tasks of her team's patients, most urgent first,
// then by deadline, with what she does to one — schedule it, cancel it, record it missed —
// and the way into the visit form (visit_form.js). The words for a task's kind, status,
// reason and due window live here too; the alert inbox shows an alert's task with them.
import { ApiError, get, post } from "./api.js";
import { h } from "./dom.js";
import { dateTime } from "./format.js";
import { t } from "./i18n.js";
import { render, session } from "./app.js";

export const KINDS = ["home_visit", "phone", "clinic"];
const STATUSES = ["requested", "scheduled", "completed", "cancelled", "missed"];
const PROGRAMMES = ["hypertension", "diabetes_type2"];
// Rules whose visit template docs/visits.md lists; any other rule is named by its id.
const RULES_IN_WORDS = ["B2", "H1", "S2"];
// A deadline within this many hours is "due soon" (a nurse plans her next working day).
const DUE_SOON_HOURS = 24;

const known = (list, value) => list.includes(value);

/** The task's kind in words ("上门随访"). */
export const kindWord = (kind) => (known(KINDS, kind) ? t(`visits.kind.${kind}`) : kind);

/** The task's status in words ("已安排"). */
export const statusWord = (status) => (known(STATUSES, status) ? t(`visits.status.${status}`) : status);

/** "1 紧急" … "3 常规": the priority as a number and a word. */
export const priorityWord = (priority) => `P${priority} ${t(`visits.priority.${[1, 2, 3].includes(priority) ? priority : 3}`)}`;

/** Why the task exists, in words: the alert's rule, the doctor's request, the 基本公卫 follow-up. */
export function reasonWords(task) {
  const [scope, what] = String(task.reason_key || "").split(":");
  if (scope === "routine" && known(PROGRAMMES, what)) return t("visits.reason.routine", { programme: t(`condition.${what}`) });
  if (scope === "referral" && known(PROGRAMMES, what)) return t("visits.reason.referral", { programme: t(`condition.${what}`) });
  if (task.rule_id) {
    const rule = known(RULES_IN_WORDS, task.rule_id) ? t(`visits.rule.${task.rule_id}`) : task.rule_id;
    return task.reason_kind === "doctor_request"
      ? t("visits.reason.doctor_alert", { rule })
      : t("visits.reason.alert", { rule });
  }
  if (task.reason_kind === "doctor_request") return t("visits.reason.doctor");
  return t("visits.reason.other");
}

/** {state, word}: overdue (past the window's end), due soon, or not yet. */
export function dueState(task, now = Date.now()) {
  const latest = new Date(task.latest).getTime();
  if (["completed", "cancelled", "missed"].includes(task.status)) return { state: "none", word: "" };
  if (latest < now) return { state: "danger", word: t("visits.overdue") };
  if (latest - now < DUE_SOON_HOURS * 3600000) return { state: "warn", word: t("visits.due_soon") };
  return { state: "ok", word: t("visits.on_time") };
}

/** "2026-12-03 08:00 – 2026-12-17 08:00" in ``zone`` (default: the queue item's patient's). */
export const windowText = (task, zone = task.time_zone) => `${dateTime(task.earliest, zone)} – ${dateTime(task.latest, zone)}`;

/** The value of a datetime-local input for ``date`` in the browser's zone. */
export function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export const isNurse = () => !!session.me && session.me.roles.includes("nurse");

/** The task's API path. */
export const taskPath = (task) => `/patients/${encodeURIComponent(task.patient_id)}/visits/${task.id}`;

/** An API error in words: 409 (status moved on), 422 (refused input), anything else. */
export function failureText(error) {
  if (error instanceof ApiError && error.status === 409) return t("visits.error.conflict");
  if (error instanceof ApiError && error.status === 422) {
    return t("visits.error.refused", { detail: typeof error.detail === "string" ? error.detail : "" });
  }
  return error instanceof ApiError ? t("error.http", { status: error.status }) : t("error.network");
}

function taskActions(task, message) {
  const id = task.id;
  const at = h("input", { type: "datetime-local", id: `at-${id}`, required: true,
    value: localInput(task.scheduled_at ? new Date(task.scheduled_at) : nextHalfHour()) });
  const reason = h("input", { type: "text", id: `reason-${id}`, maxlength: "2000" });
  const needsAssignee = !task.assignee && !isNurse();
  const assignee = needsAssignee ? h("input", { type: "text", id: `assignee-${id}`, maxlength: "64" }) : null;
  const say = (text) => {
    message.className = "error";
    message.textContent = text;
  };
  const send = async (path, body, done) => {
    try {
      await post(`${taskPath(task)}/${path}`, body);
      sessionStorage.setItem("vg.visitMessage", done);
      render();
    } catch (error) {
      say(failureText(error));
    }
  };
  const schedule = () => {
    if (!at.value) return say(t("visits.error.when"));
    const why = reason.value.trim();
    if (task.status === "scheduled" && !why) {
      reason.focus();
      return say(t("visits.error.reschedule_reason"));
    }
    const body = { at: new Date(at.value).toISOString(), reason: why };
    if (!task.assignee) {
      const who = assignee ? assignee.value.trim() : session.me.username;
      if (!who) return say(t("visits.error.assignee"));
      body.assignee = who;
    }
    return send("schedule", body, t("visits.done.scheduled", { code: task.code }));
  };
  const close = (path, done) => () => {
    const why = reason.value.trim();
    if (!why) {
      reason.focus();
      return say(t("visits.error.reason"));
    }
    return send(path, { reason: why }, done);
  };
  return h("div", { class: "visit-actions" },
    h("label", { for: `at-${id}` }, t("visits.when"), at),
    assignee ? h("label", { for: `assignee-${id}` }, t("visits.assignee"), assignee) : null,
    h("label", { for: `reason-${id}` }, t("visits.reason_label"), reason),
    h("div", { class: "visit-buttons" },
      h("button", { type: "button", class: "big", onclick: schedule },
        task.status === "scheduled" ? t("visits.reschedule") : t("visits.schedule")),
      task.status === "scheduled"
        ? h("a", { class: "button big", href: `#/visit/${id}`, id: `form-${id}` }, t("visits.open_form"))
        : null,
      task.status === "scheduled"
        ? h("button", { type: "button", class: "secondary big", onclick: close("missed", t("visits.done.missed", { code: task.code })) }, t("visits.missed"))
        : null,
      h("button", { type: "button", class: "secondary big", onclick: close("cancel", t("visits.done.cancelled", { code: task.code })) }, t("visits.cancel"))));
}

function nextHalfHour() {
  const d = new Date(Date.now() + 30 * 60000);
  d.setMinutes(d.getMinutes() < 30 ? 30 : 60, 0, 0);
  return d;
}

function taskCard(task, message) {
  const due = dueState(task);
  return h("li", { class: `visit-card${due.state === "danger" ? " overdue" : ""}`, "data-task": String(task.id) },
    h("div", { class: "visit-head" },
      h("span", { class: `pill ${task.priority === 1 ? "s-danger" : task.priority === 2 ? "s-warn" : "s-none"}` }, priorityWord(task.priority)),
      " ",
      h("a", { href: `#/patient/${encodeURIComponent(task.patient_id)}` }, task.patient_name || task.patient_id),
      " · ", kindWord(task.kind),
      " · ", h("span", { class: "visit-status" }, statusWord(task.status)),
      " ", h("span", { class: "note" }, task.code)),
    h("p", { class: "visit-reason" }, reasonWords(task), task.note ? h("span", { class: "note" }, ` — ${task.note}`) : null),
    h("p", { class: "visit-due" },
      t("visits.window"), " ", windowText(task), " ",
      due.word ? h("span", { class: `pill s-${due.state} due` }, due.state === "danger" ? `⚠ ${due.word}` : due.word) : null),
    task.scheduled_at
      ? h("p", { class: "visit-when" }, t("visits.scheduled_at", { when: dateTime(task.scheduled_at, task.time_zone), who: task.assignee || "—" }))
      : h("p", { class: "visit-when note" }, task.assignee ? t("visits.assigned_to", { who: task.assignee }) : t("visits.unassigned")),
    taskActions(task, message));
}

/** The queue: open tasks by priority, then deadline (the API's order). */
export async function visitQueuePage() {
  document.title = `${t("visits.title")} · VitalGate`;
  const { data } = await get("/visits/queue");
  const message = h("p", { role: "status", id: "visits-message" });
  const done = sessionStorage.getItem("vg.visitMessage");
  if (done) {
    message.textContent = done;
    sessionStorage.removeItem("vg.visitMessage");
  }
  const overdue = data.filter((task) => dueState(task).state === "danger").length;
  return h("section", { id: "visit-queue-page" },
    h("h1", {}, t("visits.title"), " ", h("span", { class: "note" }, t("visits.count", { n: data.length }))),
    h("nav", { class: "inline visit-links", "aria-label": t("visits.views") },
      h("a", { href: "#/visits/route", id: "link-route" }, t("visits.route")),
      " · ",
      h("a", { href: "#/visits/week", id: "link-week" }, t("visits.week"))),
    overdue ? h("p", { class: "pill s-danger", id: "visits-overdue" }, `⚠ ${t("visits.overdue_count", { n: overdue })}`) : null,
    message,
    data.length
      ? h("ol", { class: "visit-queue", id: "visit-queue" }, data.map((task) => taskCard(task, message)))
      : h("p", { class: "note", id: "visits-empty" }, t("visits.empty")));
}
