// Logging in: staff with username, password and the authenticator code; patients and
// family with their phone, then the code from the SMS link (or by opening the link).
import { ApiError, post } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { loggedIn } from "./app.js";

function field(id, label, attrs) {
  return h("label", { for: id }, label, h("input", { id, name: id, required: true, ...attrs }));
}

function failure(box, error) {
  box.textContent = error instanceof ApiError && error.status === 429 ? t("login.too_many") : t("login.failed");
}

export function loginPage() {
  document.title = `${t("login.title")} · VitalGate`;
  const staffError = h("p", { class: "error", role: "alert" });
  const staff = h("form", { class: "stack", id: "staff-login", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(staff);
    try {
      await post("/auth/login", {
        username: data.get("username"), password: data.get("password"), code: data.get("code"),
      });
      await loggedIn();
    } catch (error) {
      failure(staffError, error);
    }
  } },
    field("username", t("login.username"), { autocomplete: "username" }),
    field("password", t("login.password"), { type: "password", autocomplete: "current-password" }),
    field("code", t("login.code"), { inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6,8}" }),
    h("button", { type: "submit" }, t("login.submit")),
    staffError);

  const phoneError = h("p", { class: "error", role: "alert" });
  const sent = h("p", { class: "note", role: "status" });
  const redeem = h("form", { class: "stack", id: "sms-redeem", hidden: true, onsubmit: async (event) => {
    event.preventDefault();
    let token = String(new FormData(redeem).get("sms_code")).trim();
    if (token.includes("#")) token = token.split("#").pop();
    await useToken(token, phoneError);
  } },
    field("sms_code", t("login.sms_code"), { autocomplete: "one-time-code" }),
    h("button", { type: "submit" }, t("login.submit")));
  const phone = h("form", { class: "stack", id: "sms-request", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await post("/auth/sms/request", { phone: String(new FormData(phone).get("phone")).trim() });
      sent.textContent = t("login.sms_sent");
      redeem.hidden = false;
    } catch (error) {
      failure(phoneError, error);
    }
  } },
    field("phone", t("login.phone"), { type: "tel", inputmode: "tel", autocomplete: "tel" }),
    h("button", { type: "submit" }, t("login.sms_send")));

  return h("div", { class: "cards" },
    h("section", { "aria-labelledby": "staff-title" },
      h("h1", { id: "staff-title" }, t("login.staff")), staff),
    h("section", { "aria-labelledby": "phone-title" },
      h("h1", { id: "phone-title" }, t("login.family")), phone, sent, redeem, phoneError));
}

async function useToken(token, box) {
  try {
    await post("/auth/sms/verify", { token });
    await loggedIn();
    return true;
  } catch (error) {
    failure(box, error);
    return false;
  }
}

/** The page the SMS link opens: log in with the token from the fragment. */
export async function smsLinkPage(token) {
  const box = h("p", { class: "error", role: "alert" });
  if (token && (await useToken(token, box))) return h("p", {}, "…");
  box.textContent = t("login.link_invalid");
  return h("section", {}, box, h("p", {}, h("a", { href: "#/login" }, t("login.title"))));
}
