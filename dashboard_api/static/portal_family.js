// The patient's consent page: who can see what and since when, change scopes, revoke (with
// a confirmation), and invite a family member by SMS. Phone numbers are checked here in
// words before the API checks them again.
import { ApiError, api, del, get, post } from "./api.js";
import { h } from "./dom.js";
import { dateTime } from "./format.js";
import { listOf, t } from "./i18n.js";
import { notFoundPage, render } from "./app.js";

const SCOPES = ["view_readings", "receive_alerts", "act_for_patient"];
// A mainland mobile number: 11 digits, 1 then 3-9 (what the SMS gateway delivers to).
const MAINLAND_MOBILE = /^1[3-9]\d{9}$/;

// A message shown once on the page drawn after a change (the page is drawn anew).
function flash(text) {
  sessionStorage.setItem("vg.family_message", text);
  render();
}

const day = (value, zone) => dateTime(value, zone).slice(0, 10);
const scopesInWords = (scopes) => listOf(scopes.map((s) => t(`scope.${s}`)));
const who = (consent) => consent.phone_hint
  ? t("family.member", { relationship: consent.relationship, phone: consent.phone_hint })
  : t("family.member_nophone", { relationship: consent.relationship });

function scopeBoxes(prefix, chosen) {
  return h("fieldset", { class: "scopes" }, h("legend", {}, t("family.scopes")),
    SCOPES.map((scope) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: `${prefix}-scope`, value: scope, id: `${prefix}-${scope}`, checked: chosen.includes(scope) }),
      " ", t(`scope.${scope}`))));
}

const checked = (root, prefix) => [...root.querySelectorAll(`input[name=${prefix}-scope]:checked`)].map((i) => i.value);

function consentItem(path, consent, zone, message) {
  // ``message`` is the page's status line (a refused scope change is said there).
  const item = h("li", { class: "consent", "data-username": consent.username });
  const slug = consent.username.replace(/[^\w-]/g, "_");
  const editor = h("div", { class: "editor", hidden: true },
    scopeBoxes(`edit-${slug}`, consent.scopes),
    h("button", { type: "button", class: "save-scopes", onclick: async () => {
      const scopes = checked(editor, `edit-${slug}`);
      if (!scopes.length) { message.textContent = t("family.need_scope"); return; }
      await post(`${path}/consents`, { username: consent.username, scopes });
      flash(t("family.saved"));
    } }, t("family.save")));
  const confirm = h("div", { class: "confirm", hidden: true, role: "alertdialog", "aria-label": t("family.revoke") },
    h("p", {}, t("family.revoke_confirm", { who: who(consent) })),
    h("button", { type: "button", class: "revoke-yes", onclick: async () => {
      await del(`${path}/consents/${encodeURIComponent(consent.username)}`);
      flash(t("family.revoked"));
    } }, t("family.revoke_yes")), " ",
    h("button", { type: "button", class: "secondary", onclick: () => { confirm.hidden = true; } }, t("action.cancel")));
  item.append(
    h("p", { class: "who" }, h("strong", {}, who(consent))),
    h("p", { class: "what" }, scopesInWords(consent.scopes)),
    h("p", { class: "note" }, t("family.since", { date: day(consent.granted_at, zone) }),
      consent.expires_at ? ` · ${t("family.until", { date: day(consent.expires_at, zone) })}` : ""),
    h("button", { type: "button", class: "secondary change", onclick: () => { editor.hidden = !editor.hidden; } }, t("family.change")), " ",
    h("button", { type: "button", class: "revoke", onclick: () => { confirm.hidden = false; } }, t("family.revoke")),
    editor, confirm);
  return item;
}

function inviteForm(path) {
  const error = h("p", { class: "error", role: "alert", id: "invite-error" });
  const form = h("form", { class: "stack", id: "invite-form", novalidate: true });
  form.append(
    h("p", { class: "note" }, t("family.invite_intro")),
    h("label", {}, t("family.phone"),
      h("input", { id: "invite-phone", type: "tel", inputmode: "numeric", autocomplete: "tel", maxlength: 20 })),
    h("label", {}, t("family.relationship"),
      h("input", { id: "invite-relationship", maxlength: 32, placeholder: t("family.relationship_hint") })),
    scopeBoxes("invite", ["view_readings"]),
    h("button", { type: "submit" }, t("family.send")),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const phone = form.querySelector("#invite-phone").value.replace(/[\s-]/g, "").replace(/^\+86/, "");
    const relationship = form.querySelector("#invite-relationship").value.trim();
    const scopes = checked(form, "invite");
    if (!MAINLAND_MOBILE.test(phone)) { error.textContent = t("family.bad_phone"); return; }
    if (!relationship) { error.textContent = t("family.need_relationship"); return; }
    if (!scopes.length) { error.textContent = t("family.need_scope"); return; }
    try {
      const sent = await post(`${path}/family/invitations`, { phone, relationship, scopes });
      flash(sent.sms_sent ? t("family.sent", { phone: sent.phone_hint }) : t("family.sms_failed"));
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 422) {
        const detail = typeof failure.detail === "string" ? failure.detail : "";
        error.textContent = detail.startsWith("phone: this number") ? t("family.not_invitable")
          : detail.startsWith("relationship") ? t("family.need_relationship") : t("family.bad_phone");
      } else {
        error.textContent = failure instanceof ApiError ? t("error.http", { status: failure.status }) : t("error.network");
      }
    }
  });
  return form;
}

export async function familyPage(id) {
  const { data } = await get("/patients");
  const patient = data.find((p) => p.id === id);
  if (!patient) return notFoundPage();
  const path = `/patients/${encodeURIComponent(patient.id)}`;
  const consents = await api("GET", `${path}/consents`);
  document.title = `${t("family.title")} · VitalGate`;
  const zone = patient.time_zone;
  const message = h("p", { role: "status", id: "family-message" }, sessionStorage.getItem("vg.family_message") || "");
  sessionStorage.removeItem("vg.family_message");
  const current = consents.filter((c) => c.in_force);
  const past = consents.filter((c) => !c.in_force);
  return h("article", { id: "family" },
    h("p", {}, h("a", { href: `#/portal/${patient.id}` }, t("portal.nav.back"))),
    h("h1", {}, t("family.title")),
    h("p", {}, t("family.intro")),
    message,
    h("h2", {}, t("family.current")),
    current.length
      ? h("ul", { class: "consents", id: "consents" }, current.map((c) => consentItem(path, c, zone, message)))
      : h("p", { id: "consents-none" }, t("family.none")),
    h("h2", {}, t("family.invite")),
    inviteForm(path),
    past.length ? h("details", { id: "consents-past" }, h("summary", {}, t("family.history")),
      h("ul", {}, past.map((c) => h("li", {}, t("family.history_item", {
        who: who(c), scopes: scopesInWords(c.scopes), from: day(c.granted_at, zone),
        to: c.revoked_at || c.expires_at ? day(c.revoked_at || c.expires_at, zone) : "—",
      }))))) : null);
}
