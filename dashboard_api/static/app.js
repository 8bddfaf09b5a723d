// VitalGate web app: the router, the header and the pages. Pages are functions that take
// the route's parameters and return a DOM node; new pages (the alert inbox, triage) are
// one more entry in ROUTES.
import { ApiError, get, hasSession, openStream, post } from "./api.js";
import { LANGUAGES, loadLanguage, prefs, t } from "./i18n.js";
import { h } from "./dom.js";
import { portalPage } from "./portal.js";
import { familyPage } from "./portal_family.js";
import { settingsPage } from "./portal_settings.js";
import { pairingWizardPage } from "./pairing_wizard.js";
import { loginPage, smsLinkPage } from "./login.js";
import { patientListPage, patientPage } from "./staff.js";
import { inboxPage } from "./inbox.js";
import { visitQueuePage } from "./visits_pages.js";
import { visitFormPage } from "./visit_form.js";
import { triagePage } from "./triage.js";
import { dayRoutePage, weekPage } from "./visit_route.js";
import { accountsPage, contractsPage, teamsPage } from "./admin_pages.js";
import { fleetPage, quarantinePage } from "./it_pages.js";
import { auditPage } from "./audit_page.js";
import { mayOpen } from "./admin_ui.js";

const STAFF_ROLES = ["family_doctor", "nurse", "team_lead", "public_health", "admin", "it_operator"];
// Roles that care for patients: they see the patient list, the inbox and the visits.
const CLINICAL_ROLES = ["family_doctor", "nurse", "team_lead", "public_health"];
// The admin and IT pages, in the order of the header's links (admin_ui.PAGE_ROLES decides).
const SYSTEM_NAV = [
  ["accounts", "#/admin/accounts", "nav.accounts"],
  ["teams", "#/admin/teams", "nav.teams"],
  ["contracts", "#/admin/contracts", "nav.contracts"],
  ["fleet", "#/it/fleet", "nav.fleet"],
  ["quarantine", "#/it/quarantine", "nav.quarantine"],
  ["audit", "#/audit", "nav.audit"],
];

export const session = { me: null, live: false, stopStream: null };
const listeners = new Set();
const alertListeners = new Set();

/** Pages register here to hear live readings while they are shown. */
export function onLiveReading(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Pages register here to hear alert changes (new, acknowledged, resolved…) while shown. */
export function onLiveAlert(listener) {
  alertListeners.add(listener);
  return () => alertListeners.delete(listener);
}

export const isStaff = () => !!session.me && session.me.roles.some((r) => STAFF_ROLES.includes(r));
const isClinical = () => !!session.me && session.me.roles.some((r) => CLINICAL_ROLES.includes(r));

const ROUTES = [
  [/^#\/login$/, () => loginPage()],
  [/^#\/patients$/, () => patientListPage()],
  [/^#\/inbox(?:\?unread=1)?$/, () => inboxPage()],
  [/^#\/visits$/, () => visitQueuePage()],
  [/^#\/visit\/(\d+)$/, (id) => visitFormPage(id)],
  [/^#\/triage$/, () => triagePage()],
  [/^#\/patient\/([\w.-]+)$/, (id) => patientPage(id)],
  [/^#\/portal\/([\w.-]+)\/family$/, (id) => familyPage(id)],
  [/^#\/portal\/([\w.-]+)\/settings$/, (id) => settingsPage(id)],
  [/^#\/visits\/route(?:\?[\w=&.%-]*)?$/, () => dayRoutePage()],
  [/^#\/visits\/week(?:\?[\w=&.%-]*)?$/, () => weekPage()],
  [/^#\/portal\/([\w.-]+)\/pair$/, (id) => pairingWizardPage(id)],
  [/^#\/portal(?:\/([\w.-]+))?$/, (id) => portalPage(id)],
  [/^#\/admin\/accounts(?:\?[\w=&]*)?$/, () => accountsPage()],
  [/^#\/admin\/teams$/, () => teamsPage()],
  [/^#\/admin\/contracts(?:\?[\w=&]*)?$/, () => contractsPage()],
  [/^#\/it\/fleet$/, () => fleetPage()],
  [/^#\/it\/quarantine(?:\?[\w=&]*)?$/, () => quarantinePage()],
  [/^#\/audit(?:\?.*)?$/, () => auditPage()],
];

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function home() {
  if (!isStaff()) return "#/portal";
  if (isClinical()) return "#/patients";
  const first = SYSTEM_NAV.find(([page]) => mayOpen(page));
  return first ? first[1] : "#/patients";
}

export function notFoundPage() {
  document.title = `${t("notfound.title")} · VitalGate`;
  return h("section", { class: "notfound" },
    h("h1", {}, t("notfound.title")),
    h("p", {}, t("notfound.body")),
    h("p", {}, h("a", { href: home() }, t("notfound.back"))));
}

export function errorBox(error) {
  if (error instanceof ApiError && error.status === 404) return notFoundPage();
  const text = error instanceof ApiError ? t("error.http", { status: error.status }) : t("error.network");
  return h("p", { class: "error", role: "alert" }, text);
}

function header() {
  document.querySelector(".skip").textContent = t("action.skip");
  const bar = document.getElementById("bar");
  bar.replaceChildren();
  const language = h("select", { id: "pref-lang", onchange: async (e) => {
    prefs.language = e.target.value;
    await loadLanguage();
    render();
  } }, LANGUAGES.map((code) => h("option", { value: code, selected: code === prefs.language }, t(`lang.${code}`))));
  const unit = h("select", { id: "pref-unit", onchange: (e) => {
    prefs.glucoseUnit = e.target.value;
    render();
  } }, ["mmol/L", "mg/dL"].map((u) => h("option", { value: u, selected: u === prefs.glucoseUnit }, u)));
  const toggle = (id, key, label) => h("label", {},
    h("input", { type: "checkbox", id, checked: prefs[key], onchange: (e) => {
      prefs[key] = e.target.checked;
      applyDisplay();
    } }), " ", label);
  bar.append(
    h("a", { class: "brand", href: session.me ? home() : "#/login" }, "VitalGate"),
    h("label", {}, t("pref.language"), " ", language),
    h("label", {}, t("pref.glucose_unit"), " ", unit),
    toggle("pref-large", "large", t("pref.large")),
    toggle("pref-contrast", "contrast", t("pref.contrast")),
  );
  if (session.me) {
    if (isStaff() && (isClinical() || !SYSTEM_NAV.some(([page]) => mayOpen(page)))) {
      bar.append(
        h("a", { href: "#/patients", id: "nav-patients" }, t("nav.patients")),
        h("a", { href: "#/inbox", id: "nav-inbox" }, t("nav.inbox")),
        h("a", { href: "#/triage", id: "nav-triage" }, t("nav.triage")),
        h("a", { href: "#/visits", id: "nav-visits" }, t("nav.visits")),
      );
      if (session.me.roles.includes("nurse") || session.me.roles.includes("team_lead")) {
        bar.append(h("a", { href: "#/visits/route", id: "nav-route" }, t("nav.route")));
      }
    }
    for (const [page, href, key] of SYSTEM_NAV) {
      if (mayOpen(page)) bar.append(h("a", { href, id: `nav-${page}` }, t(key)));
    }
    bar.append(
      h("span", { class: "live-badge", id: "live-state" }, session.live ? t("live.on") : t("live.off")),
      h("span", {}, session.me.username),
      h("button", { class: "secondary", id: "logout", onclick: logout }, t("action.logout")),
    );
  }
}

function applyDisplay() {
  document.documentElement.classList.toggle("large", prefs.large);
  document.documentElement.classList.toggle("contrast", prefs.contrast);
}

async function logout() {
  try { await post("/auth/logout", {}); } catch { /* the session is gone either way */ }
  if (session.stopStream) session.stopStream();
  session.me = null;
  go("#/login");
}

function startStream() {
  if (session.stopStream) return;
  session.stopStream = openStream(
    (reading) => listeners.forEach((listener) => listener(reading)),
    (alert) => alertListeners.forEach((listener) => listener(alert)),
    (on) => {
      session.live = on;
      const badge = document.getElementById("live-state");
      if (badge) badge.textContent = on ? t("live.on") : t("live.off");
    },
  );
}

/** Called after a login: who am I, then my home page. */
export async function loggedIn() {
  session.me = await get("/auth/me");
  startStream();
  go(home());
}

let generation = 0;

export async function render() {
  const mine = ++generation;
  listeners.clear();
  alertListeners.clear();
  const main = document.getElementById("main");
  if (!session.me && hasSession()) {
    try {
      session.me = await get("/auth/me");
      startStream();
    } catch {
      session.me = null;
    }
  }
  header();
  let hash = location.hash || "";
  if (!session.me && hash !== "#/login") hash = "#/login";
  if (session.me && (hash === "" || hash === "#/" || hash === "#/login")) {
    history.replaceState(null, "", "/" + home());
    hash = home();
  }
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  let node;
  try {
    node = route ? await route[1](...hash.match(route[0]).slice(1)) : notFoundPage();
  } catch (error) {
    node = errorBox(error);
  }
  if (mine !== generation) return;
  main.replaceChildren(node);
}

async function start() {
  applyDisplay();
  await loadLanguage();
  window.addEventListener("hashchange", render);
  if (location.pathname === "/login/sms") {
    const token = location.hash.slice(1);
    history.replaceState(null, "", "/#/login");
    header();
    document.getElementById("main").replaceChildren(await smsLinkPage(token));
    return;
  }
  await render();
}

start();
