// The portal's "what to do now" box and the symptom report form. The advice words come
// from the API (alerts.advice: the same words as the SMS), in the reader's language.
import { ApiError, post } from "./api.js";
import { h } from "./dom.js";
import { currentLanguage, t } from "./i18n.js";
import { render } from "./app.js";

const SYMPTOMS = ["dizziness", "chest_tightness", "palpitations", "shortness_of_breath", "leg_swelling", "other"];
const words = (byLanguage) => byLanguage[currentLanguage()] || byLanguage["zh-CN"] || "";

/** The box of urgent things to do now; nothing when there are none. */
export function whatToDoBox(items, own) {
  if (!items.length) return null;
  return h("section", { id: "what-to-do", class: "what-to-do", role: "alert", "aria-labelledby": "what-to-do-title" },
    h("h2", { id: "what-to-do-title" }, t("todo.title")),
    h("ul", {}, items.map((item) => h("li", { "data-rule": item.rule_id, "data-severity": item.severity },
      h("span", { class: "pill s-danger" }, t(`todo.severity.${item.severity}`)), " ",
      h("span", { class: "advice" }, words(item.advice) || t("todo.generic")),
      Object.keys(item.emergency).length ? h("strong", { class: "emergency" }, " ", words(item.emergency)) : null,
      h("span", { class: "told" }, " ", item.doctor_notified
        ? t(own ? "todo.doctor_told_self" : "todo.doctor_told") : t("todo.doctor_pending"))))));
}

/** Report a symptom: choose one, words optional (required for "other"), tell the doctor. */
export function symptomForm(path) {
  const status = h("p", { role: "status", id: "symptom-message" }, sessionStorage.getItem("vg.symptom_message") || "");
  sessionStorage.removeItem("vg.symptom_message");
  const note = h("textarea", { id: "symptom-note", rows: 2, maxlength: 500 });
  const form = h("form", { class: "stack", id: "symptom-form" },
    h("p", {}, t("symptoms.intro")),
    h("fieldset", {}, h("legend", {}, t("symptoms.choose")),
      SYMPTOMS.map((code) => h("label", { class: "check" },
        h("input", { type: "radio", name: "symptom", value: code, id: `symptom-${code}` }), " ", t(`symptom.${code}`)))),
    h("label", { for: "symptom-note" }, t("symptoms.note")), note,
    h("button", { type: "submit" }, t("symptoms.send")),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const symptom = form.querySelector("input[name=symptom]:checked")?.value;
    if (!symptom) { status.textContent = t("symptoms.pick_one"); return; }
    if (symptom === "other" && !note.value.trim()) { status.textContent = t("symptoms.need_note"); return; }
    try {
      const reported = await post(`${path}/symptoms`, { symptom, note: note.value.trim() });
      const advice = [words(reported.advice), words(reported.emergency)].filter(Boolean).join(" ");
      sessionStorage.setItem("vg.symptom_message", `${t("symptoms.sent")} ${advice}`.trim());
      render();
    } catch (failure) {
      status.textContent = failure instanceof ApiError && failure.status === 429
        ? t("symptoms.too_many") : t("error.http", { status: failure.status ?? 0 });
    }
  });
  return h("section", { id: "symptoms" }, h("h2", {}, t("symptoms.title")), form);
}
