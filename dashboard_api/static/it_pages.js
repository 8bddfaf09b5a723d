// The IT operator's pages: the gateway fleet (#/it/fleet), refreshed every REFRESH_MS while
// shown, and the quarantine (#/it/quarantine): what ingest refused, why in words, the raw
// payload on request (health data: the page warns, the API audits), and release with what
// the API answered (stored, still refused and why, released before).
import { get, post } from "./api.js";
import { h } from "./dom.js";
import { ago, dateTime } from "./format.js";
import { t } from "./i18n.js";
import { notFoundPage } from "./app.js";
import { columnHeader, confirmIn, mayOpen, messageLine, refusal } from "./admin_ui.js";

// A gateway's status arrives every 60 s (gateway.publisher); asking twice as often shows a
// change within a minute without loading the API with a screen left open all day.
export const REFRESH_MS = 30000;
const STATES = ["online", "offline", "unknown"];
const REASONS = ["contract", "plausibility", "ownership", "before_binding", "store_rejected", "envelope"];
// Offline first, then unknown, then online: what needs a look comes first.
const STATE_RANK = { offline: 0, unknown: 1, online: 2 };

const stateWord = (state) => (STATES.includes(state) ? t(`fleet.state.${state}`) : state);
export const reasonWord = (reason) => (REASONS.includes(reason) ? t(`quarantine.reason.${reason}`) : reason);

function connectionCell(c) {
  const symbol = c.state === "online" ? (c.stale ? "◐" : "●") : c.state === "offline" ? "○" : "?";
  const css = c.state === "online" && !c.stale ? "s-ok" : c.state === "offline" ? "s-danger" : "s-warn";
  return h("td", { class: "connection" },
    h("span", { class: `pill ${css}` }, `${symbol} ${stateWord(c.state)}`),
    c.stale ? h("span", { class: "pill s-warn" }, `⚠ ${t("fleet.stale")}`) : null,
    c.since ? h("div", { class: "note" }, t(c.since_exact ? "fleet.since" : "fleet.since_about", { when: dateTime(c.since) })) : null,
    c.last_seen_at ? h("div", { class: "note" }, t("fleet.last_seen", { ago: ago(c.last_seen_at) })) : null);
}

function backlogCell(g) {
  if (g.queue_depth == null) return h("td", {}, "—");
  const oldest = g.oldest_unacked_age_seconds;
  return h("td", {},
    t("fleet.queued", { n: g.queue_depth }),
    oldest != null && g.queue_depth > 0 ? h("div", { class: "note" }, t("fleet.oldest", { minutes: Math.round(oldest / 60) })) : null,
    g.outbox_bytes != null && g.outbox_quota_bytes
      ? h("div", { class: "note" }, t("fleet.outbox", { percent: Math.round((100 * g.outbox_bytes) / g.outbox_quota_bytes) })) : null,
    g.over_quota ? h("span", { class: "pill s-danger" }, `⚠ ${t("fleet.over_quota")}`) : null);
}

function batteryCell(g) {
  const low = g.devices.filter((d) => d.battery_low);
  if (!low.length) return h("td", {}, h("span", { class: "note" }, t("fleet.batteries_ok", { n: g.devices.length })));
  return h("td", {}, h("ul", { class: "plain" }, low.map((d) => h("li", {},
    h("span", { class: "pill s-warn" }, `⚠ ${t("fleet.battery_low")}`), " ", d.device_id,
    d.battery_percent != null ? ` (${d.battery_percent} %)` : ""))));
}

const SORTS = {
  gateway: (a, b) => a.gateway_id.localeCompare(b.gateway_id),
  state: (a, b) => (STATE_RANK[a.connection.state] ?? 1) - (STATE_RANK[b.connection.state] ?? 1)
    || new Date(a.connection.since || 0) - new Date(b.connection.since || 0),
  backlog: (a, b) => (b.queue_depth ?? -1) - (a.queue_depth ?? -1),
  version: (a, b) => String(a.software_version || "").localeCompare(String(b.software_version || "")),
  battery: (a, b) => b.devices.filter((d) => d.battery_low).length - a.devices.filter((d) => d.battery_low).length,
};

/** #/it/fleet: every gateway, online or offline since when, backlog, version, low batteries. */
export async function fleetPage() {
  if (!mayOpen("fleet")) return notFoundPage();
  document.title = `${t("fleet.title")} · VitalGate`;
  let data = (await get("/gateways")).data;
  const state = { key: "state", ascending: true, offlineOnly: false };
  const body = h("tbody");
  // Not a live region: a screen reader would announce it every 30 s.
  const refreshed = h("p", { class: "note", id: "fleet-refreshed" });
  const heads = h("tr");
  const sort = {
    get key() { return state.key; },
    get ascending() { return state.ascending; },
    by(key) {
      state.ascending = state.key === key ? !state.ascending : true;
      state.key = key;
      draw();
    },
  };
  const draw = () => {
    const rows = data.filter((g) => !state.offlineOnly || g.connection.state !== "online").sort(SORTS[state.key]);
    if (!state.ascending) rows.reverse();
    heads.replaceChildren(
      columnHeader(t("fleet.gateway"), sort, "gateway"), columnHeader(t("fleet.connection"), sort, "state"),
      columnHeader(t("fleet.backlog"), sort, "backlog"), columnHeader(t("fleet.version"), sort, "version"),
      columnHeader(t("fleet.batteries"), sort, "battery"));
    body.replaceChildren(...(rows.length ? rows.map((g) => h("tr", { "data-gateway": g.gateway_id },
      h("th", { scope: "row" }, g.gateway_id, g.label ? h("div", { class: "note" }, g.label) : null,
        g.active ? null : h("span", { class: "pill s-none" }, t("fleet.retired"))),
      connectionCell(g.connection), backlogCell(g), h("td", {}, g.software_version || "—"), batteryCell(g)))
      : [h("tr", {}, h("td", { colspan: "5", class: "note" }, t("fleet.none")))]));
    refreshed.textContent = t("fleet.refreshed", { when: dateTime(new Date()) });
  };
  draw();
  const page = h("section", { id: "fleet-page" },
    h("h1", {}, t("fleet.title"), " ", h("span", { class: "note" }, t("fleet.count", { n: data.length }))),
    h("p", {}, h("label", { for: "offline-only" },
      h("input", { type: "checkbox", id: "offline-only", onchange: (event) => { state.offlineOnly = event.target.checked; draw(); } }),
      " ", t("fleet.offline_only"))),
    refreshed,
    h("table", { id: "fleet-table" }, h("caption", {}, t("fleet.caption")), h("thead", {}, heads), body));
  const timer = setInterval(async () => {
    if (!page.isConnected) return clearInterval(timer);
    try {
      data = (await get("/gateways")).data;
      draw();
    } catch {
      refreshed.textContent = t("fleet.refresh_failed");
    }
  }, REFRESH_MS);
  return page;
}

function releaseResult(result) {
  if (result.already_released) return { text: t("quarantine.result.already"), failed: false };
  if (result.released) return { text: t("quarantine.result.stored", { n: result.stored_ids.length }), failed: false };
  return { text: t("quarantine.result.refused", { why: result.still_refused.join("; ") }), failed: true };
}

function entryRow(entry, message) {
  const holder = h("div", { class: "entry-panel", id: `panel-${entry.id}` });
  const inspect = () => confirmIn(holder, t("quarantine.inspect_warning"), async () => {
    try {
      const full = await get(`/quarantine/${entry.id}`);
      holder.replaceChildren(h("div", { class: "raw", id: `raw-${entry.id}` },
        h("p", { class: "pill s-warn" }, `⚠ ${t("quarantine.health_data")}`),
        h("dl", {},
          h("dt", {}, t("quarantine.full_detail")), h("dd", {}, full.full_detail),
          h("dt", {}, t("quarantine.device")), h("dd", {}, full.device_id || "—"),
          h("dt", {}, t("quarantine.claimed_patient")), h("dd", {}, full.claimed_patient_id || "—")),
        h("pre", { tabindex: "0", "aria-label": t("quarantine.raw") }, full.raw ?? full.raw_base64)));
    } catch (error) {
      message.say(refusal(error), true);
    }
  }, `confirm-inspect-${entry.id}`);
  const release = () => {
    const form = h("form", { class: "inline", id: `release-form-${entry.id}`, onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const body = { reason: String(data.get("reason")).trim() };
      const decided = String(data.get("decided_by") || "").trim();
      if (decided) body.decided_by = decided;
      confirmIn(holder, t("quarantine.confirm.release", { id: entry.id }), async () => {
        try {
          const said = releaseResult(await post(`/quarantine/${entry.id}/release`, body));
          message.say(said.text, said.failed);
          holder.replaceChildren(h("p", { id: `result-${entry.id}`, class: said.failed ? "error" : "done" }, said.failed ? `⚠ ${said.text}` : `✓ ${said.text}`));
        } catch (error) {
          message.say(refusal(error), true);
        }
      }, `confirm-release-${entry.id}`);
    } },
    h("label", { for: `why-${entry.id}` }, t("quarantine.release_reason"),
      h("input", { id: `why-${entry.id}`, name: "reason", required: true, maxlength: "500" })),
    h("label", { for: `decided-${entry.id}` }, t("quarantine.decided_by"),
      h("input", { id: `decided-${entry.id}`, name: "decided_by", maxlength: "64" })),
    h("button", { type: "submit", id: `release-submit-${entry.id}` }, t("quarantine.release")));
    holder.replaceChildren(form);
    form.querySelector("input").focus();
  };
  return h("tr", { "data-entry": String(entry.id) },
    h("td", {}, dateTime(entry.received_at)),
    h("td", {}, entry.gateway_id || "—"),
    h("th", { scope: "row" }, reasonWord(entry.reason),
      entry.security_event ? h("span", { class: "pill s-danger" }, `⚠ ${t("quarantine.security_event")}`) : null,
      h("div", { class: "note" }, entry.detail)),
    h("td", {}, entry.released_at
      ? t("quarantine.released_by", { who: entry.released_by || "—", when: dateTime(entry.released_at) })
      : t("quarantine.held")),
    h("td", {},
      h("button", { type: "button", class: "secondary", id: `inspect-${entry.id}`, onclick: inspect }, t("quarantine.inspect")), " ",
      entry.released_at ? null : h("button", { type: "button", id: `release-${entry.id}`, onclick: release }, t("quarantine.release")),
      holder));
}

/** #/it/quarantine: what ingest refused, newest first. */
export async function quarantinePage() {
  if (!mayOpen("quarantine")) return notFoundPage();
  document.title = `${t("quarantine.title")} · VitalGate`;
  const all = new URLSearchParams(location.hash.split("?")[1] || "").get("all") === "1";
  const page = await get(`/quarantine?limit=200${all ? "&include_released=true" : ""}`);
  const message = messageLine("quarantine-message");
  return h("section", { id: "quarantine-page" },
    h("h1", {}, t("quarantine.title"), " ", h("span", { class: "note" }, t("quarantine.count", { n: page.data.length }))),
    h("p", { class: "note" }, t("quarantine.intro")),
    h("p", {}, h("label", { for: "include-released" },
      h("input", { type: "checkbox", id: "include-released", checked: all, onchange: (event) => {
        location.hash = event.target.checked ? "#/it/quarantine?all=1" : "#/it/quarantine";
      } }), " ", t("quarantine.include_released"))),
    message,
    h("table", { id: "quarantine-table" },
      h("caption", {}, t("quarantine.caption")),
      h("thead", {}, h("tr", {}, columnHeader(t("quarantine.received")), columnHeader(t("fleet.gateway")),
        columnHeader(t("quarantine.reason")), columnHeader(t("quarantine.state")), columnHeader(t("admin.actions")))),
      h("tbody", {}, page.data.length ? page.data.map((entry) => entryRow(entry, message))
        : h("tr", {}, h("td", { colspan: "5", class: "note" }, t("quarantine.none"))))));
}
