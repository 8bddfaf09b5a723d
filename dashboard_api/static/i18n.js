// Message catalogues (JSON, one per language) and the user's display preferences, kept in
// localStorage so they survive a reload. zh-CN is the default.
export const LANGUAGES = ["zh-CN", "en"];
let messages = {};
let language = "zh-CN";

const stored = (key, fallback, allowed) => {
  const value = localStorage.getItem(key);
  return value !== null && (!allowed || allowed.includes(value)) ? value : fallback;
};

export const prefs = {
  get language() { return stored("vg.lang", "zh-CN", LANGUAGES); },
  set language(value) { localStorage.setItem("vg.lang", value); },
  get glucoseUnit() { return stored("vg.glucoseUnit", "mmol/L", ["mmol/L", "mg/dL"]); },
  set glucoseUnit(value) { localStorage.setItem("vg.glucoseUnit", value); },
  get large() { return stored("vg.large", "0") === "1"; },
  set large(value) { localStorage.setItem("vg.large", value ? "1" : "0"); },
  get contrast() { return stored("vg.contrast", "0") === "1"; },
  set contrast(value) { localStorage.setItem("vg.contrast", value ? "1" : "0"); },
};

/** Load the catalogue of the remembered language. */
export async function loadLanguage() {
  language = prefs.language;
  const response = await fetch(`/static/i18n/${language}.json`);
  messages = await response.json();
  document.documentElement.lang = language;
}

export const currentLanguage = () => language;

const has = (key) => Object.prototype.hasOwnProperty.call(messages, key);

/**
 * The message ``key`` with ``{name}`` placeholders filled; a missing key shows itself. With
 * ``n`` equal to 1 the catalogue's ``key.one`` is used where it has one ("1 alert"): Chinese
 * has no plural, English needs only this form.
 */
export function t(key, params = {}) {
  const singular = params.n === 1 && has(`${key}.one`) ? `${key}.one` : key;
  const text = has(singular) ? messages[singular] : `⟦${key}⟧`;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

/** Words in a list, joined as the language joins them: "2型糖尿病、高血压", "a, b". */
export const listOf = (items) => items.join(t("sep.list"));
