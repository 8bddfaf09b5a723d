// The administrator's pages: accounts (#/admin/accounts), teams and their members
// (#/admin/teams), contracts (#/admin/contracts). Every change asks first and says what the
// API answered, in words; a new staff member's one-time password and TOTP secret are shown
// once, as text (no QR code: nothing is drawn from the secret).
import { del, get, post } from "./api.js";
import { h } from "./dom.js";
import { dateTime } from "./format.js";
import { listOf, t } from "./i18n.js";
import { notFoundPage, render, session } from "./app.js";
import { columnHeader, confirmIn, mayOpen, messageLine, refusal, today } from "./admin_ui.js";

export const STAFF_ROLES = ["family_doctor", "nurse", "team_lead", "public_health", "admin", "it_operator"];
const POSITIONS = ["doctor", "nurse", "lead"];
const PAGE = 50;
// What a page's last change said: the page redraws after it, and the words should stay.
let flash = null;

const roleWord = (role) => (STAFF_ROLES.includes(role) || ["patient", "family"].includes(role) ? t(`role.${role}`) : role);
const positionWord = (position) => (POSITIONS.includes(position) ? t(`position.${position}`) : position);

function showFlash(line) {
  if (flash) line.say(flash.text, flash.failed);
  flash = null;
}

function redrawWith(text, failed = false) {
  flash = { text, failed };
  render();
}

/** Every current membership, by username: ["team-a 医生", …]. */
async function membershipsByUser() {
  const { data: teams } = await get("/admin/teams?limit=200");
  const lists = await Promise.all(teams.map((team) => get(`/admin/teams/${encodeURIComponent(team.code)}/members`)));
  const out = {};
  teams.forEach((team, index) => {
    for (const member of lists[index]) (out[member.username] ||= []).push(`${team.code} ${positionWord(member.position)}`);
  });
  return { teams, out };
}

function onceBox(account, password, totp) {
  return h("section", { class: "once", id: "account-once", "aria-labelledby": "once-title" },
    h("h2", { id: "once-title" }, t("accounts.once.title", { username: account.username })),
    h("p", {}, t("accounts.once.warning")),
    h("dl", {},
      h("dt", {}, t("accounts.once.password")), h("dd", {}, h("code", { id: "once-password" }, password)),
      h("dt", {}, t("accounts.once.secret")), h("dd", {}, h("code", { id: "once-secret" }, totp.secret)),
      h("dt", {}, t("accounts.once.uri")), h("dd", {}, h("code", { id: "once-uri", class: "wrap" }, totp.otpauth_uri))));
}

function createForm(message, onceHolder) {
  const confirmHolder = h("div", { id: "create-confirm" });
  const form = h("form", { class: "inline", id: "account-form", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      username: String(data.get("username")).trim(),
      display_name: String(data.get("display_name")).trim(),
      kind: "staff",
      roles: [String(data.get("role"))],
    };
    confirmIn(confirmHolder, t("accounts.confirm.create", { username: body.username, role: roleWord(body.roles[0]) }), async () => {
      try {
        const account = await post("/admin/users", body);
        const reset = await post(`/admin/users/${encodeURIComponent(account.username)}/password-reset`, {});
        const totp = await post(`/admin/users/${encodeURIComponent(account.username)}/totp`, {});
        form.reset();
        message.say(t("accounts.done.created", { username: account.username }));
        onceHolder.replaceChildren(onceBox(account, reset.password, totp));
      } catch (error) {
        message.say(refusal(error), true);
      }
    }, "create-confirm");
  } },
  h("label", { for: "new-username" }, t("accounts.username"),
    h("input", { id: "new-username", name: "username", required: true, maxlength: "64", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]*", autocomplete: "off" })),
  h("label", { for: "new-name" }, t("accounts.display_name"),
    h("input", { id: "new-name", name: "display_name", required: true, maxlength: "200", autocomplete: "off" })),
  h("label", { for: "new-role" }, t("accounts.role"),
    h("select", { id: "new-role", name: "role" }, STAFF_ROLES.map((role) => h("option", { value: role }, roleWord(role))))),
  h("button", { type: "submit", id: "account-create" }, t("accounts.create")));
  return h("section", { "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, t("accounts.create_title")), form, confirmHolder);
}

function accountRow(account, teamsOf, message) {
  const holder = h("div", {});
  const mine = session.me && account.username === session.me.username;
  const toggle = account.active
    ? h("button", { type: "button", class: "secondary", id: `disable-${account.username}`, disabled: mine, onclick: () =>
      confirmIn(holder, t("accounts.confirm.disable", { username: account.username }), () => setActive(account, "disable", message), `confirm-${account.username}`) },
    t("accounts.disable"))
    : h("button", { type: "button", class: "secondary", id: `enable-${account.username}`, onclick: () =>
      confirmIn(holder, t("accounts.confirm.enable", { username: account.username }), () => setActive(account, "enable", message), `confirm-${account.username}`) },
    t("accounts.enable"));
  return h("tr", { "data-user": account.username },
    h("th", { scope: "row" }, account.username),
    h("td", {}, account.display_name || h("span", { class: "note" }, t(`accounts.kind.${account.kind === "patient" ? "patient" : account.kind === "family" ? "family" : "staff"}`))),
    h("td", {}, listOf(account.roles.map(roleWord)) || "—"),
    h("td", {}, listOf(teamsOf[account.username] || []) || "—"),
    h("td", {}, h("span", { class: `pill ${account.active ? "s-ok" : "s-none"}` }, account.active ? `✓ ${t("accounts.active")}` : `✕ ${t("accounts.inactive")}`),
      account.kind === "staff" && !(account.has_password && account.totp_enrolled)
        ? h("span", { class: "pill s-warn" }, `⚠ ${t("accounts.not_enrolled")}`) : null),
    h("td", {}, toggle, holder));
}

async function setActive(account, verb, message) {
  try {
    await post(`/admin/users/${encodeURIComponent(account.username)}/${verb}`, {});
    redrawWith(t(`accounts.done.${verb}`, { username: account.username }));
  } catch (error) {
    message.say(refusal(error), true);
  }
}

/** #/admin/accounts: who has an account, their roles, teams and whether it is active. */
export async function accountsPage() {
  if (!mayOpen("accounts")) return notFoundPage();
  document.title = `${t("accounts.title")} · VitalGate`;
  const start = Number(new URLSearchParams(location.hash.split("?")[1] || "").get("offset") || 0) || 0;
  const [page, { out: teamsOf }] = await Promise.all([get(`/admin/users?limit=${PAGE}&offset=${start}`), membershipsByUser()]);
  const message = messageLine("accounts-message");
  showFlash(message);
  const onceHolder = h("div", {});
  const body = h("tbody", {}, page.data.map((account) => accountRow(account, teamsOf, message)));
  return h("section", { id: "accounts-page" },
    h("h1", {}, t("accounts.title")),
    message,
    createForm(message, onceHolder),
    onceHolder,
    h("table", { id: "accounts-table" },
      h("caption", {}, t("accounts.caption", { from: start + 1, to: start + page.data.length })),
      h("thead", {}, h("tr", {},
        columnHeader(t("accounts.username")), columnHeader(t("accounts.display_name")), columnHeader(t("accounts.roles")),
        columnHeader(t("accounts.teams")), columnHeader(t("accounts.state")), columnHeader(t("admin.actions")))),
      body),
    pager("#/admin/accounts", start, page.next_offset));
}

function pager(base, offset, next) {
  const sep = base.includes("?") ? "&" : "?";
  return h("nav", { class: "inline pager", "aria-label": t("admin.pages") },
    offset > 0 ? h("a", { href: `${base}${sep}offset=${Math.max(0, offset - PAGE)}`, id: "page-prev" }, t("admin.prev")) : null,
    " ",
    next != null ? h("a", { href: `${base}${sep}offset=${next}`, id: "page-next" }, t("admin.next")) : null);
}

function teamSection(team, members, message) {
  const holder = h("div", { id: `team-confirm-${team.code}` });
  const remove = (member) => confirmIn(holder, t("teams.confirm.remove", { username: member.username, team: team.code }), async () => {
    try {
      await del(`/admin/teams/${encodeURIComponent(team.code)}/members/${encodeURIComponent(member.username)}`);
      redrawWith(t("teams.done.removed", { username: member.username, team: team.code }));
    } catch (error) {
      message.say(refusal(error), true);
    }
  }, `confirm-remove-${team.code}`);
  const form = h("form", { class: "inline", id: `add-member-${team.code}`, onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { username: String(data.get("username")).trim(), position: String(data.get("position")) };
    confirmIn(holder, t("teams.confirm.add", { username: body.username, team: team.code, position: positionWord(body.position) }), async () => {
      try {
        await post(`/admin/teams/${encodeURIComponent(team.code)}/members`, body);
        redrawWith(t("teams.done.added", { username: body.username, team: team.code }));
      } catch (error) {
        message.say(refusal(error), true);
      }
    }, `confirm-add-${team.code}`);
  } },
  h("label", { for: `member-${team.code}` }, t("accounts.username"),
    h("input", { id: `member-${team.code}`, name: "username", required: true, maxlength: "64", autocomplete: "off" })),
  h("label", { for: `position-${team.code}` }, t("teams.position"),
    h("select", { id: `position-${team.code}`, name: "position" }, POSITIONS.map((p) => h("option", { value: p }, positionWord(p))))),
  h("button", { type: "submit", id: `add-${team.code}` }, t("teams.add")));
  return h("section", { class: "team", "data-team": team.code, "aria-labelledby": `team-${team.code}` },
    h("h2", { id: `team-${team.code}` }, `${team.name} (${team.code})`, " ", h("span", { class: "note" }, team.organisation)),
    h("table", { id: `members-${team.code}` },
      h("caption", {}, t("teams.members_caption", { team: team.name })),
      h("thead", {}, h("tr", {}, columnHeader(t("accounts.username")), columnHeader(t("teams.position")),
        columnHeader(t("teams.since")), columnHeader(t("admin.actions")))),
      h("tbody", {}, members.length ? members.map((member) => h("tr", { "data-member": member.username },
        h("th", { scope: "row" }, member.username),
        h("td", {}, positionWord(member.position)),
        h("td", {}, dateTime(member.valid_from)),
        h("td", {}, h("button", { type: "button", class: "secondary", id: `remove-${team.code}-${member.username}`, onclick: () => remove(member) },
          t("teams.remove")))))
        : h("tr", {}, h("td", { colspan: "4", class: "note" }, t("teams.no_members"))))),
    form, holder);
}

function newTeamForm(message) {
  const holder = h("div", { id: "team-create-confirm" });
  const form = h("form", { class: "inline", id: "team-form", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { code: String(data.get("code")).trim(), name: String(data.get("name")).trim(), organisation: String(data.get("organisation")).trim() };
    confirmIn(holder, t("teams.confirm.create", { team: body.code }), async () => {
      try {
        await post("/admin/teams", body);
        redrawWith(t("teams.done.created", { team: body.code }));
      } catch (error) {
        message.say(refusal(error), true);
      }
    }, "confirm-team");
  } },
  h("label", { for: "team-code" }, t("teams.code"), h("input", { id: "team-code", name: "code", required: true, maxlength: "64", autocomplete: "off" })),
  h("label", { for: "team-name" }, t("teams.name"), h("input", { id: "team-name", name: "name", required: true, maxlength: "200" })),
  h("label", { for: "team-org" }, t("teams.organisation"), h("input", { id: "team-org", name: "organisation", required: true, maxlength: "200" })),
  h("button", { type: "submit", id: "team-create" }, t("teams.create")));
  return h("details", { class: "new-team" }, h("summary", {}, t("teams.create_title")), form, holder);
}

/** #/admin/teams: each team with its current members and their positions. */
export async function teamsPage() {
  if (!mayOpen("teams")) return notFoundPage();
  document.title = `${t("teams.title")} · VitalGate`;
  const { data: teams } = await get("/admin/teams?limit=200");
  const members = await Promise.all(teams.map((team) => get(`/admin/teams/${encodeURIComponent(team.code)}/members`)));
  const message = messageLine("teams-message");
  showFlash(message);
  return h("section", { id: "teams-page" },
    h("h1", {}, t("teams.title")),
    message,
    newTeamForm(message),
    teams.length ? teams.map((team, index) => teamSection(team, members[index], message)) : h("p", { class: "note" }, t("teams.none")));
}

function contractRow(contract, message) {
  const holder = h("div", {});
  const endForm = () => {
    const form = h("form", { class: "inline", id: `end-form-${contract.id}`, onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const body = { ends_on: String(data.get("ends_on")), reason: String(data.get("reason")).trim() };
      confirmIn(holder, t("contracts.confirm.end", { patient: contract.patient_id, team: contract.team_code, date: body.ends_on }), async () => {
        try {
          await post(`/admin/contracts/${contract.id}/end`, body);
          redrawWith(t("contracts.done.ended", { patient: contract.patient_id }));
        } catch (error) {
          message.say(refusal(error), true);
        }
      }, `confirm-end-${contract.id}`);
    } },
    h("label", { for: `ends-${contract.id}` }, t("contracts.ends_on"),
      h("input", { type: "date", id: `ends-${contract.id}`, name: "ends_on", required: true, value: today() })),
    h("label", { for: `why-${contract.id}` }, t("contracts.end_reason"),
      h("input", { id: `why-${contract.id}`, name: "reason", required: true, maxlength: "500" })),
    h("button", { type: "submit", id: `end-submit-${contract.id}` }, t("contracts.end")));
    holder.replaceChildren(form);
    form.querySelector("input[name=reason]").focus();
  };
  return h("tr", { "data-contract": String(contract.id) },
    h("th", { scope: "row" }, contract.patient_id),
    h("td", {}, contract.team_code),
    h("td", {}, contract.service_package),
    h("td", {}, contract.starts_on),
    h("td", {}, contract.ends_on
      ? `${contract.ends_on}${contract.end_reason ? ` — ${contract.end_reason}` : ""}`
      : h("span", { class: "pill s-ok" }, `✓ ${t("contracts.open")}`)),
    h("td", {}, contract.ends_on ? null
      : h("button", { type: "button", class: "secondary", id: `end-${contract.id}`, onclick: endForm }, t("contracts.end")), holder));
}

/** #/admin/contracts: who is contracted with which team, with history; sign and end. */
export async function contractsPage() {
  if (!mayOpen("contracts")) return notFoundPage();
  document.title = `${t("contracts.title")} · VitalGate`;
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const openOnly = query.get("open") === "1";
  const start = Number(query.get("offset") || 0) || 0;
  const [page, { data: teams }] = await Promise.all([
    get(`/admin/contracts?limit=${PAGE}&offset=${start}${openOnly ? "&open_only=true" : ""}`),
    get("/admin/teams?limit=200"),
  ]);
  const message = messageLine("contracts-message");
  showFlash(message);
  const holder = h("div", { id: "contract-confirm" });
  const form = h("form", { class: "inline", id: "contract-form", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      patient_id: String(data.get("patient_id")).trim(),
      team_code: String(data.get("team_code")),
      service_package: String(data.get("service_package")).trim(),
      starts_on: String(data.get("starts_on")),
    };
    confirmIn(holder, t("contracts.confirm.sign", { patient: body.patient_id, team: body.team_code }), async () => {
      try {
        await post("/admin/contracts", body);
        redrawWith(t("contracts.done.signed", { patient: body.patient_id, team: body.team_code }));
      } catch (error) {
        message.say(refusal(error), true);
      }
    }, "confirm-sign");
  } },
  h("label", { for: "contract-patient" }, t("contracts.patient"),
    h("input", { id: "contract-patient", name: "patient_id", required: true, maxlength: "64", autocomplete: "off" })),
  h("label", { for: "contract-team" }, t("contracts.team"),
    h("select", { id: "contract-team", name: "team_code" }, teams.map((team) => h("option", { value: team.code }, `${team.name} (${team.code})`)))),
  h("label", { for: "contract-package" }, t("contracts.package"),
    h("input", { id: "contract-package", name: "service_package", required: true, maxlength: "64" })),
  h("label", { for: "contract-start" }, t("contracts.starts_on"),
    h("input", { type: "date", id: "contract-start", name: "starts_on", required: true, value: today() })),
  h("button", { type: "submit", id: "contract-sign" }, t("contracts.sign")));
  const base = openOnly ? "#/admin/contracts?open=1" : "#/admin/contracts";
  return h("section", { id: "contracts-page" },
    h("h1", {}, t("contracts.title")),
    message,
    h("section", { "aria-labelledby": "sign-title" }, h("h2", { id: "sign-title" }, t("contracts.sign_title")), form, holder),
    h("p", {}, h("label", { for: "open-only" },
      h("input", { type: "checkbox", id: "open-only", checked: openOnly, onchange: (event) => {
        location.hash = event.target.checked ? "#/admin/contracts?open=1" : "#/admin/contracts";
      } }), " ", t("contracts.open_only"))),
    h("table", { id: "contracts-table" },
      h("caption", {}, t("contracts.caption")),
      h("thead", {}, h("tr", {}, columnHeader(t("contracts.patient")), columnHeader(t("contracts.team")),
        columnHeader(t("contracts.package")), columnHeader(t("contracts.starts_on")), columnHeader(t("contracts.ends")),
        columnHeader(t("admin.actions")))),
      h("tbody", {}, page.data.length ? page.data.map((c) => contractRow(c, message))
        : h("tr", {}, h("td", { colspan: "6", class: "note" }, t("contracts.none"))))),
    pager(base, start, page.next_offset));
}
