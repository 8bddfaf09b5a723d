// Notification preferences: the channel for non-urgent messages and quiet hours. The page
// says first that urgent alerts always come through, whatever is chosen.
import { ApiError, api, get } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { notFoundPage } from "./app.js";

const CHANNELS = ["sms", "wechat", "none"];
const hhmm = (value) => (value ? value.slice(0, 5) : "");

export async function settingsPage(id) {
  const { data } = await get("/patients");
  const patient = data.find((p) => p.id === id);
  if (!patient) return notFoundPage();
  const path = `/patients/${encodeURIComponent(patient.id)}/notification-preferences`;
  const prefs = await get(path);
  document.title = `${t("settings.title")} · VitalGate`;
  const status = h("p", { role: "status", id: "settings-message" });
  const quietOn = h("input", { type: "checkbox", id: "quiet-on", checked: !!prefs.quiet_start });
  const start = h("input", { type: "time", id: "quiet-start", value: hhmm(prefs.quiet_start) || "22:00" });
  const end = h("input", { type: "time", id: "quiet-end", value: hhmm(prefs.quiet_end) || "07:00" });
  const visitSms = h("input", { type: "checkbox", id: "visit-sms", checked: !!prefs.visit_reminder_sms });
  const form = h("form", { class: "stack", id: "settings-form" },
    h("fieldset", {}, h("legend", {}, t("settings.channel")),
      CHANNELS.map((channel) => h("label", { class: "check" },
        h("input", { type: "radio", name: "channel", value: channel, id: `channel-${channel}`, checked: prefs.channel === channel }),
        " ", t(`settings.channel.${channel}`)))),
    h("fieldset", {}, h("legend", {}, t("settings.quiet")),
      h("label", { class: "check" }, quietOn, " ", t("settings.quiet_on")),
      h("label", {}, t("settings.quiet_start"), start),
      h("label", {}, t("settings.quiet_end"), end)),
    h("fieldset", {}, h("legend", {}, t("settings.visits")),
      h("label", { class: "check" }, visitSms, " ", t("settings.visit_sms")),
      h("p", { class: "note" }, t("settings.visit_sms_note"))),
    h("button", { type: "submit" }, t("settings.save")),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const channel = form.querySelector("input[name=channel]:checked")?.value || "sms";
    const body = { channel, quiet_start: null, quiet_end: null, visit_reminder_sms: visitSms.checked };
    if (quietOn.checked) {
      if (!start.value || !end.value || start.value === end.value) {
        status.textContent = t("settings.need_times");
        return;
      }
      body.quiet_start = start.value;
      body.quiet_end = end.value;
    }
    try {
      await api("PUT", path, body);
      status.textContent = t("settings.saved");
    } catch (failure) {
      status.textContent = failure instanceof ApiError && failure.status === 422
        ? t("settings.need_times") : t("error.http", { status: failure.status ?? 0 });
    }
  });
  return h("article", { id: "settings" },
    h("p", {}, h("a", { href: `#/portal/${patient.id}` }, t("portal.nav.back"))),
    h("h1", {}, t("settings.title")),
    h("p", { class: "urgent-note", id: "settings-urgent" }, t("settings.urgent")),
    form);
}
