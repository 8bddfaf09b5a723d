// A nurse's day route (#/visits/route) and week (#/visits/week). The day shows her stops
// in order with times and community, the team's open tasks that could be added, and saves
// the order with PUT /visits/route; the API names every problem (over capacity, past the
// working day, outside a due window …) and the page says each in words. Times shown
// before saving are the API's rule (docs/visit-routes.md): work start + travel, then one
// visit and one journey per stop. Every control is a native button or input, so the route
// is planned with the keyboard as well as the mouse.
import { api, get, post } from "./api.js";
import { h } from "./dom.js";
import { clock, dateTime } from "./format.js";
import { t } from "./i18n.js";
import { go } from "./app.js";

const DAY = /^\d{4}-\d{2}-\d{2}$/;

function query() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

/** Today in the browser's zone, YYYY-MM-DD. */
function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d + n));
  return date.toISOString().slice(0, 10);
}

function monday(day) {
  const [y, m, d] = day.split("-").map(Number);
  const weekday = (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
  return addDays(day, -weekday);
}

const minutes = (hhmm) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
const hhmm = (total) => `${String(Math.floor(total / 60) % 24).padStart(2, "0")}:${String(total % 60).padStart(2, "0")}`;

/** The planned start and end of stop ``index`` (as the API computes them). */
export function slotText(capacity, index) {
  const start = minutes(capacity.work_start) + capacity.travel_minutes
    + index * (capacity.travel_minutes + capacity.minutes_per_visit);
  return `${hhmm(start)}–${hhmm(start + capacity.minutes_per_visit)}`;
}

function area(stop) {
  return [stop.community, stop.village].filter(Boolean).join(" ") || t("route.no_area");
}

function who(stop) {
  return `${stop.patient_name || stop.patient_id} · ${stop.visit_code}`;
}

function href(params) {
  const search = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  return search.toString();
}

function problemText(problem, known) {
  const task = known.get(problem.task_id);
  const code = task ? task.visit_code : problem.task_id ?? "";
  const key = `route.problem.${problem.problem}`;
  const text = t(key, { code });
  return text.startsWith("⟦") ? problem.message : text;
}

function picker(day, nurse, target) {
  const dayInput = h("input", { type: "date", id: "route-date", name: "date", value: day, required: true });
  const nurseInput = h("input", { type: "text", id: "route-nurse", name: "nurse", value: nurse || "", maxlength: "64" });
  return h("form", { class: "inline", id: "route-picker", onsubmit: (event) => {
    event.preventDefault();
    if (!DAY.test(dayInput.value)) return;
    go(`${target}?${href({ [target.endsWith("week") ? "start" : "date"]: dayInput.value, nurse: nurseInput.value.trim() })}`);
  } },
  h("label", { for: "route-date" }, target.endsWith("week") ? t("route.week_of") : t("route.date")), " ", dayInput, " ",
  h("label", { for: "route-nurse" }, t("route.nurse")), " ", nurseInput, " ",
  h("button", { type: "submit" }, t("route.show")));
}

/** The day route of the nurse (the caller, or ``nurse=`` for a team lead). */
export async function dayRoutePage() {
  document.title = `${t("route.title")} · VitalGate`;
  const params = query();
  const day = DAY.test(params.get("date") || "") ? params.get("date") : today();
  const nurse = params.get("nurse") || "";
  const route = await get(`/visits/route?${href({ date: day, nurse })}`);
  const capacity = route.capacity;
  const known = new Map([...route.stops, ...route.suggestions].map((s) => [s.task_id, s]));
  const saved = new Set(route.stops.map((s) => s.task_id));
  let order = route.stops.map((s) => s.task_id);
  const errors = h("div", { id: "route-errors", role: "alert" });
  const status = h("p", { id: "route-status", role: "status" });
  const stopsList = h("ol", { id: "route-stops", class: "route" });
  const suggestionsList = h("ul", { id: "route-suggestions", class: "route" });

  const move = (index, by, focusClass) => {
    const other = index + by;
    if (other < 0 || other >= order.length) return;
    [order[index], order[other]] = [order[other], order[index]];
    draw();
    const button = stopsList.querySelector(`li[data-task='${order[other]}'] .${focusClass}`);
    if (button) button.focus();
  };

  const draw = () => {
    stopsList.replaceChildren(...order.map((id, index) => {
      const stop = known.get(id);
      return h("li", { "data-task": String(id) },
        h("span", { class: "slot" }, slotText(capacity, index)), " ",
        h("a", { href: `#/visit/${stop.task_id}` }, who(stop)), " ",
        h("span", { class: "note" }, `${area(stop)} · ${t(`route.kind.${stop.kind}`)} · P${stop.priority}`), " ",
        h("button", { type: "button", class: "secondary up", disabled: index === 0, "aria-label": t("route.up_label", { code: stop.visit_code }), onclick: () => move(index, -1, "up") }, t("route.up")),
        h("button", { type: "button", class: "secondary down", disabled: index === order.length - 1, "aria-label": t("route.down_label", { code: stop.visit_code }), onclick: () => move(index, 1, "down") }, t("route.down")),
        saved.has(id) ? null : h("button", { type: "button", class: "secondary remove", "aria-label": t("route.remove_label", { code: stop.visit_code }), onclick: () => {
          order = order.filter((other) => other !== id);
          draw();
        } }, t("route.remove")));
    }));
    if (!order.length) stopsList.replaceChildren(h("li", { class: "note", id: "route-empty" }, t("route.empty")));
    const open = route.suggestions.filter((s) => !order.includes(s.task_id));
    suggestionsList.replaceChildren(...open.map((stop) => h("li", { "data-task": String(stop.task_id) },
      h("a", { href: `#/visit/${stop.task_id}` }, who(stop)), " ",
      h("span", { class: "note" }, `${area(stop)} · P${stop.priority} · ${t("route.due", { when: dateTime(stop.due_latest, capacity.time_zone) })}`), " ",
      h("button", { type: "button", class: "add", "aria-label": t("route.add_label", { code: stop.visit_code }), onclick: () => {
        order = [...order, stop.task_id];
        draw();
        status.textContent = t("route.added", { code: stop.visit_code });
      } }, t("route.add")))));
    if (!open.length) suggestionsList.replaceChildren(h("li", { class: "note" }, t("route.no_suggestions")));
  };

  const save = async () => {
    errors.replaceChildren();
    try {
      await api("PUT", "/visits/route", { date: day, nurse: nurse || null, task_ids: order });
      status.textContent = t("route.saved");
      go(location.hash);
    } catch (error) {
      const detail = Array.isArray(error.detail) ? error.detail : [];
      const lines = detail.filter((p) => p && p.problem).map((p) => h("li", {}, problemText(p, known)));
      errors.replaceChildren(h("p", { class: "error" }, t("route.not_saved")),
        lines.length ? h("ul", {}, lines) : h("p", {}, t("error.http", { status: error.status ?? 0 })));
    }
  };

  const suggestOrder = async () => {
    const answer = await post("/visits/route/suggest", { date: day, nurse: nurse || null });
    order = answer.task_ids.filter((id) => known.has(id));
    draw();
    status.textContent = t("route.suggested");
  };

  draw();
  return h("section", { class: "day-route" },
    h("h1", {}, t("route.title"), " ", h("span", { class: "note" }, `${day} · ${route.nurse}`)),
    h("div", { class: "inline" }, picker(day, nurse, "#/visits/route"), " ",
      h("a", { href: `#/visits/week?${href({ start: monday(day), nurse })}`, id: "route-to-week" }, t("route.week_link"))),
    h("p", { id: "route-capacity", class: "note" }, t("route.capacity", {
      start: capacity.work_start, end: capacity.work_end, max: capacity.max_visits,
      visit: capacity.minutes_per_visit, travel: capacity.travel_minutes, free: route.free_slots,
    })),
    h("h2", {}, t("route.stops")),
    stopsList,
    h("p", { class: "inline" },
      h("button", { type: "button", id: "route-save", onclick: save }, t("route.save")), " ",
      h("button", { type: "button", class: "secondary", id: "route-suggest", onclick: suggestOrder }, t("route.suggest"))),
    status,
    errors,
    h("h2", {}, t("route.suggestions")),
    suggestionsList);
}

/** Seven columns of the nurse's scheduled visits from ``start`` (a Monday by default). */
export async function weekPage() {
  document.title = `${t("week.title")} · VitalGate`;
  const params = query();
  const start = DAY.test(params.get("start") || "") ? params.get("start") : monday(today());
  const nurse = params.get("nurse") || "";
  const [week, capacity] = await Promise.all([
    get(`/visits/week?${href({ start, nurse })}`),
    get(`/visits/capacity?${href({ nurse })}`),
  ]);
  const columns = week.days.map((day) => h("div", { class: "week-day", "data-date": day.date },
    h("h2", {}, h("a", { href: `#/visits/route?${href({ date: day.date, nurse })}` }, day.date)),
    day.stops.length
      ? h("ol", { class: "route" }, day.stops.map((stop) => h("li", { "data-task": String(stop.task_id) },
        h("span", { class: "slot" }, stop.start ? clock(stop.start, capacity.time_zone) : ""), " ",
        h("a", { href: `#/visit/${stop.task_id}` }, who(stop)), " ",
        h("span", { class: "note" }, area(stop)))))
      : h("p", { class: "note" }, t("week.free"))));
  return h("section", { class: "week" },
    h("h1", {}, t("week.title"), " ", h("span", { class: "note" }, `${start} · ${week.nurse}`)),
    h("div", { class: "inline" }, picker(start, nurse, "#/visits/week"), " ",
      h("a", { href: `#/visits/week?${href({ start: addDays(start, -7), nurse })}`, id: "week-prev" }, t("week.prev")), " ",
      h("a", { href: `#/visits/week?${href({ start: addDays(start, 7), nurse })}`, id: "week-next" }, t("week.next"))),
    h("div", { class: "week-grid", id: "week-grid" }, columns));
}
