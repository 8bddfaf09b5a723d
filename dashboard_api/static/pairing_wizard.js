// The pairing wizard of the portal (#/portal/{patient}/pair): choose the home gateway, put
// the device in pairing mode, the gateway looks for it (the API's pairing call, polled with
// a countdown), confirm the device by the maker, model and serial read from it, then wait
// for its first reading. Also the portal's devices list with unpairing.
import { ApiError, get, post } from "./api.js";
import { h } from "./dom.js";
import { dateTime } from "./format.js";
import { t } from "./i18n.js";
import { KINDS, latestInWords } from "./readings.js";
import { notFoundPage, onLiveReading, render } from "./app.js";

// How long the gateway looks for the device. Two minutes is enough to press a meter's
// Bluetooth button and hold it near the gateway, short enough that a Just-Works meter is
// not left open to anyone nearby for long (the API allows at most 15 minutes).
export const WINDOW_SECONDS = 120;
// How often the page asks how the window is going: the gateway scans in 3-second rounds.
const POLL_MS = 1500;
// How often the page also asks for the device's first reading, in case the live stream is
// down or the reading came before this step was shown.
const READING_POLL_MS = 10000;

const enc = encodeURIComponent;

function gatewayWord(gateway) {
  const state = gateway && gateway.connection ? gateway.connection.state : "unknown";
  if (state === "online" && gateway.connection.stale) return t("pair.gw_state.stale");
  return t(`pair.gw_state.${state}`);
}

const offline = (gateway) => !!gateway && !!gateway.connection &&
  (gateway.connection.state === "offline" || gateway.connection.stale);

/** The portal's devices section: each current device with an unpair button that asks
 * first, and the way to the pairing wizard. */
export function portalDevicesSection(patientId, devices, zone) {
  const message = h("p", { role: "status", id: "devices-message" });
  const row = (d) => {
    const cell = h("td", {});
    if (d.current) {
      const ask = h("button", { type: "button", class: "secondary", "data-unpair": d.device_id, onclick: () => {
        cell.replaceChildren(
          h("span", {}, t("devices.unpair_ask", { device: `${d.manufacturer} ${d.model}` }), " "),
          h("button", { type: "button", class: "danger", id: `unpair-yes-${d.device_id}`, onclick: async () => {
            try {
              await post(`/patients/${enc(patientId)}/devices/${enc(d.device_id)}/unpair`, {});
              render();
            } catch (error) {
              message.className = "error";
              message.textContent = error instanceof ApiError && error.status === 403
                ? t("pair.error.forbidden") : t("devices.unpair_failed");
            }
          } }, t("devices.unpair_yes")),
          " ",
          h("button", { type: "button", class: "secondary", onclick: () => cell.replaceChildren(ask) }, t("action.cancel")));
        cell.querySelector("button").focus();
      } }, t("devices.unpair"));
      cell.append(ask);
    }
    return h("tr", { "data-device": d.device_id },
      h("td", {}, `${d.manufacturer} ${d.model} · ${d.serial}`),
      h("td", {}, `${dateTime(d.valid_from, zone)}${d.valid_to ? ` – ${dateTime(d.valid_to, zone)}` : ""}`),
      h("td", {}, d.current ? t("devices.current") : t("devices.past")),
      cell);
  };
  return h("section", { "aria-labelledby": "devices-title" },
    h("h2", { id: "devices-title" }, t("devices.title")),
    h("p", {}, h("a", { href: `#/portal/${enc(patientId)}/pair`, id: "pair-start", class: "button big" }, t("pair.start"))),
    devices.length ? h("table", { id: "devices" },
      h("thead", {}, h("tr", {}, ["devices.device", "devices.since", "devices.state", "devices.action"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, devices.map(row)))
      : h("p", { class: "note" }, t("devices.none")),
    message);
}

/** The words for a failed or refused pairing call. */
function pairError(error) {
  if (error instanceof ApiError) {
    if (error.status === 503) return t("pair.error.no_broker");
    if (error.status === 403) return t("pair.error.forbidden");
    if (error.status === 422) return t("pair.error.gateway");
  }
  return t("error.network");
}

/** The words for how a pairing window ended without a device. */
function outcomeText(request) {
  if (request.state === "timeout") return t("pair.error.expired");
  if (request.outcome && request.outcome.includes("another patient")) return t("pair.error.other_patient");
  return t("pair.error.failed");
}

export async function pairingWizardPage(patientId) {
  const { data } = await get("/patients");
  const patient = data.find((p) => p.id === patientId);
  if (!patient) return notFoundPage();
  const path = `/patients/${enc(patientId)}`;
  const [devices, fleet, targets] = await Promise.all([
    get(`${path}/devices`), get("/gateways"), get(`${path}/targets`).catch(() => []),
  ]);
  document.title = `${t("pair.title")} · VitalGate`;
  const zone = patient.time_zone;
  const mine = [...new Set(devices.filter((d) => d.current).map((d) => d.gateway_id))];
  const gateways = mine.map((id) => fleet.data.find((g) => g.gateway_id === id) || { gateway_id: id, label: id, connection: null });
  const state = { gateway: null, request: null, device: null, timer: null, stop: null };
  const body = h("div", { id: "pair-body" });
  const heading = h("h2", { id: "pair-step", tabindex: "-1" });
  const root = h("article", { id: "pair-wizard", class: "wizard" },
    h("p", {}, h("a", { href: `#/portal/${enc(patientId)}` }, t("pair.back"))),
    h("h1", {}, t("pair.title")),
    h("ol", { class: "steps", "aria-label": t("pair.steps") }, [1, 2, 3, 4, 5].map((n) => h("li", { "data-step": n }, t(`pair.step${n}`)))),
    heading, body);

  const alive = () => root.isConnected;
  const clearTimers = () => {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    if (state.stop) state.stop();
    state.stop = null;
  };
  const show = (step, ...children) => {
    clearTimers();
    for (const li of root.querySelectorAll(".steps li")) {
      const n = Number(li.dataset.step);
      li.className = n === step ? "current" : n < step ? "done" : "";
      if (n === step) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
    }
    heading.textContent = t("pair.step_of", { n: step, title: t(`pair.step${step}`) });
    body.replaceChildren(...children);
    if (alive()) heading.focus();
  };
  const failure = (text, retry) => h("div", { class: "pair-error", role: "alert", id: "pair-error" },
    h("p", { class: "error big-text" }, text),
    retry ? h("button", { type: "button", class: "big", id: "pair-retry", onclick: retry }, t("pair.retry")) : null);

  // Step 1: the home gateway.
  const chooseGateway = () => {
    if (!gateways.length) {
      show(1, h("p", { class: "big-text", id: "pair-no-gateway" }, t("pair.no_gateway")));
      return;
    }
    const choices = gateways.map((g, i) => h("label", { class: "choice" },
      h("input", { type: "radio", name: "gateway", value: g.gateway_id, checked: i === 0 }),
      " ", h("span", { class: "big-text" }, g.label || g.gateway_id), " ",
      h("span", { class: `pill ${offline(g) ? "s-danger" : "s-ok"}` }, gatewayWord(g))));
    const note = h("p", { role: "status" });
    const form = h("form", { class: "stack", id: "pair-gateway-form", onsubmit: (event) => {
      event.preventDefault();
      const id = String(new FormData(form).get("gateway") || "");
      const chosen = gateways.find((g) => g.gateway_id === id);
      if (offline(chosen)) {
        note.className = "error";
        note.textContent = t("pair.error.offline");
        return;
      }
      state.gateway = chosen;
      pairingMode();
    } },
    h("fieldset", {}, h("legend", {}, t("pair.choose_gateway")), choices),
    h("button", { type: "submit", class: "big", id: "pair-next" }, t("pair.next")));
    show(1, form, note);
  };

  // Step 2: the device in pairing mode.
  const pairingMode = () => {
    show(2,
      h("ul", { class: "instructions big-text" },
        h("li", {}, t("pair.how.near")),
        h("li", {}, t("pair.how.button")),
        h("li", {}, t("pair.how.symbol"))),
      h("button", { type: "button", class: "big", id: "pair-search", onclick: search }, t("pair.ready")),
      " ",
      h("button", { type: "button", class: "secondary", onclick: chooseGateway }, t("pair.previous")));
  };

  // Step 3: the gateway looks; the page polls and counts down.
  const search = async () => {
    const status = h("p", { class: "big-text", id: "pair-status", role: "status" }, t("pair.opening"));
    const bar = h("progress", { id: "pair-progress", max: String(WINDOW_SECONDS), value: "0", "aria-label": t("pair.progress") });
    const countdown = h("p", { id: "pair-countdown", class: "big-text", "aria-live": "off" });
    show(3, status, bar, countdown);
    let request;
    try {
      request = await post(`${path}/devices/pair`, { gateway_id: state.gateway.gateway_id, window_seconds: WINDOW_SECONDS });
    } catch (error) {
      show(3, failure(pairError(error), search));
      return;
    }
    state.request = request;
    status.textContent = t("pair.searching");
    const expires = new Date(request.expires_at).getTime();
    const skew = Date.now() - new Date(request.requested_at).getTime();  // the server's clock vs ours
    const tick = () => {
      const left = Math.max(0, Math.round((expires + skew - Date.now()) / 1000));
      bar.value = String(WINDOW_SECONDS - left);
      countdown.textContent = left > 0 ? t("pair.countdown", { n: left }) : t("pair.closing");
    };
    tick();
    let busy = false;
    const poll = async () => {
      if (!alive()) return clearTimers();
      tick();
      if (busy) return;
      busy = true;
      try {
        const requests = await get(`${path}/devices/pairing-requests`);
        const now = requests.find((r) => r.request_id === request.request_id);
        if (!now || !alive() || state.request !== request) return;
        if (now.state === "paired") await found(now);
        else if (now.state !== "pending") show(3, failure(outcomeText(now), pairingMode));
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) show(3, failure(t("pair.error.failed"), null));
      } finally {
        busy = false;
      }
    };
    state.timer = setInterval(poll, POLL_MS);
  };

  // Step 4: what was found, by the identity read from it.
  const found = async (request) => {
    clearTimers();
    const list = await get(`${path}/devices`);
    const device = list.find((d) => d.device_id === request.device_id && d.current) ||
      { device_id: request.device_id, manufacturer: "—", model: request.device_id, serial: "—" };
    state.device = device;
    show(4,
      h("p", { class: "big-text" }, t("pair.found")),
      h("dl", { class: "identity big-text", id: "pair-identity" },
        h("dt", {}, t("pair.maker")), h("dd", { "data-field": "manufacturer" }, device.manufacturer),
        h("dt", {}, t("pair.model")), h("dd", { "data-field": "model" }, device.model),
        h("dt", {}, t("pair.serial")), h("dd", { "data-field": "serial" }, device.serial)),
      h("p", {}, t("pair.check_serial")),
      h("button", { type: "button", class: "big", id: "pair-confirm", onclick: firstReading }, t("pair.confirm")),
      " ",
      h("button", { type: "button", class: "secondary", id: "pair-reject", onclick: reject }, t("pair.reject")));
  };

  const reject = async () => {
    try {
      await post(`${path}/devices/${enc(state.device.device_id)}/unpair`, {});
      show(4, h("p", { class: "big-text", id: "pair-rejected", role: "status" }, t("pair.rejected")),
        h("button", { type: "button", class: "big", onclick: pairingMode }, t("pair.retry")));
    } catch (error) {
      show(4, failure(pairError(error), null));
    }
  };

  // Step 5: the first reading of the new device, in words with its unit.
  const firstReading = () => {
    const waiting = h("p", { class: "big-text", id: "pair-waiting", role: "status" }, t("pair.waiting"));
    show(5, waiting, h("p", { class: "note" }, t("pair.waiting_how")),
      h("p", {}, h("a", { href: `#/portal/${enc(patientId)}`, id: "pair-done", class: "button big" }, t("pair.to_portal"))));
    const since = new Date(state.request.requested_at);
    const shown = (reading) => {
      clearTimers();
      const { judged, sentence } = latestInWords(reading, targets);
      waiting.replaceChildren(
        h("span", { class: "big-readings" }, h("span", { class: `reading s-${judged.state}`, id: "pair-first-reading" }, sentence)),
        h("span", { class: "when" }, " ", t("portal.measured", { when: dateTime(reading.measured_at || reading.t, zone) })));
      waiting.prepend(h("span", { class: "done-mark" }, t("pair.first_reading"), " "));
    };
    let seen = false;
    // The live stream carries no device ids: ask the readings route whose a new one is.
    const isOurs = async (kind, id, at) => {
      const start = new Date(new Date(at).getTime() - 1000).toISOString();
      const end = new Date(new Date(at).getTime() + 1000).toISOString();
      const series = await get(`${path}/readings?kind=${kind}&start=${enc(start)}&end=${enc(end)}&points=10`);
      return series.points.find((p) => p.id === id && p.device_id === state.device.device_id);
    };
    state.stop = onLiveReading(async (reading) => {
      if (reading.patient_id !== patientId || !alive()) return;
      if (!seen && (await isOurs(reading.kind, reading.id, reading.measured_at))) {
        seen = true;
        shown(reading);
      }
    });
    const look = async () => {
      if (!alive()) return clearTimers();
      if (seen) return;
      const end = new Date(Date.now() + 60000).toISOString();
      for (const kind of KINDS) {
        const series = await get(`${path}/readings?kind=${kind}&start=${enc(since.toISOString())}&end=${enc(end)}&points=10`);
        const point = series.points.find((p) => p.device_id === state.device.device_id);
        if (point && !seen) {
          seen = true;
          return shown({ kind, values: point.values, measured_at: point.t });
        }
      }
    };
    state.timer = setInterval(look, READING_POLL_MS);
    look();
  };

  chooseGateway();
  return root;
}
