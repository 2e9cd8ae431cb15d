// Herald's page: the notification settings matrix and the bell, over Herald's JSON API. The
// bell follows herald-local's live count; where there is none (AWS) it reads it every 30 s.
//
// Signed in by a link whose fragment carries a bearer token (`#token=...`): the token is kept
// in this tab's sessionStorage and sent as `Authorization: Bearer`; no cookies. Every value
// from the API is put into the page as text (textContent, attributes), never as HTML.

const TOKEN_KEY = "herald.token";
const COUNT_EVERY_MS = 30_000;
const ALERTS_PAGE = 20;
/** Up to this many products get a tab each; beyond it, those with settings of their own do,
 * and a list picks any other. */
const PRODUCT_TABS = 8;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Signing in

/** The token from the link's fragment (then removed from the address bar) or this tab's. */
function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromLink = fragment.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The token's claims (`sub`, `role`, `exp`), read for display; the server verifies them. */
function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const value = JSON.parse(json);
    return typeof value.sub === "string" ? value : null;
  } catch {
    return null;
  }
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  $("notifications").hidden = true;
  $("webhooks").hidden = true;
  $("system-settings").hidden = true;
  $("views").hidden = true;
  $("bell").hidden = true;
  $("alerts").hidden = true;
  $("who").textContent = "";
  $("signed-out").hidden = false;
  $("signed-out-why").textContent = why || "";
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.field = error.field || fieldOf(error.message || "");
  }
}

/** `events.scan_added[1]: ...` → `events.scan_added[1]`. */
function fieldOf(message) {
  const match = /^([A-Za-z0-9_.[\]-]+):\s/.exec(message);
  return match ? match[1] : "";
}

let token = null;

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(response.status, { error: { message: `Herald answered ${response.status} with something that is not JSON` } });
  }
  if (response.status === 401) {
    signOut("Your sign-in has expired or is not valid: open a new link.");
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

// ---------------------------------------------------------------------------------------------
// The matrix

/** Resolves once `state.catalogue` is read (at start). */
let catalogueLoaded = Promise.resolve();
/** Resolves once `state.products` is read (at start). */
let productsLoaded = Promise.resolve();

const state = {
  /** Counts the views opened, so a slow answer for an earlier one is dropped. */
  opened: 0,
  me: null,
  catalogue: null,
  /** The products this user may view: [{id, name, product_type_id, access, has_settings}]. */
  products: [],
  scope: null,
  document: null,
};

const ACCESS_WORDS = {
  product_member: "you are a member of it",
  product_type_member: "you are a member of its product type",
  administrator: "you are an administrator",
};

/** The scope of one product's settings. */
function productScope(me, product) {
  const user = encodeURIComponent(me.sub);
  const why = product.access.map((a) => ACCESS_WORDS[a] || a).join(" and ");
  return {
    id: `product-${product.id}`,
    label: product.name,
    path: `/v1/users/${user}/notifications/products/${encodeURIComponent(product.id)}`,
    help:
      `For events of ${product.name} (you may view it: ${why}), added to your personal settings: ` +
      "a channel chosen here or there is used." +
      (product.has_settings ? "" : " You have no settings of your own for it yet; Save creates them."),
    system: false,
    product,
  };
}

/** Whether a product gets a tab of its own (the others are in the list beside the tabs). */
function hasTab(product) {
  return (
    state.products.length <= PRODUCT_TABS ||
    product.has_settings ||
    (state.scope && state.scope.product && state.scope.product.id === product.id)
  );
}

/** The scopes this caller may edit: [{id, label, path, help, system, product?}]. */
function scopes(me) {
  const user = encodeURIComponent(me.sub);
  const list = [
    {
      id: "personal",
      label: "Personal",
      path: `/v1/users/${user}/notifications`,
      help: "What you receive for every product you may view, unless a product's own settings add to it.",
      system: false,
    },
    ...state.products.map((product) => productScope(me, product)),
  ];
  if (me.role === "admin") {
    list.push(
      {
        id: "system",
        label: "System",
        path: "/v1/notifications/system",
        help: "What the system destinations receive: the Slack channel, the Teams webhook, the system mail address and system webhooks.",
        system: true,
      },
      {
        id: "template",
        label: "Template",
        path: "/v1/notifications/template",
        help: "The personal settings every user created from now on starts with.",
        system: false,
      },
    );
  }
  return list;
}

function renderTabs() {
  const nav = $("tabs");
  const all = scopes(state.me);
  const tab = (scope) =>
    el(
      "a",
      {
        href: `#${scope.id}`,
        "aria-current": state.scope && state.scope.id === scope.id ? "page" : false,
        dataset: { scope: scope.id },
        title: scope.product && scope.product.has_settings ? `${scope.label}: has settings of its own` : false,
      },
      scope.label,
      scope.product && scope.product.has_settings ? el("span", { class: "own", "aria-hidden": "true" }, " •") : null,
    );
  const untabbed = state.products.filter((p) => !hasTab(p));
  const picker = untabbed.length
    ? el(
        "span",
        { class: "product-picker" },
        el("label", { for: "product-picker" }, "Other product"),
        el(
          "select",
          { id: "product-picker" },
          el("option", { value: "" }, `Choose one of ${untabbed.length}…`),
          ...untabbed.map((p) => el("option", { value: `product-${p.id}` }, p.name)),
        ),
      )
    : null;
  nav.replaceChildren(...all.filter((scope) => !scope.product || hasTab(scope.product)).map(tab));
  if (picker) nav.append(picker);
}

/** The columns shown for `scope`: every channel the system switched on (Teams at system
 * scope only, as DefectDojo), the bell always. */
function columns(scope) {
  return state.catalogue.channels.filter((c) => c.enabled && (scope.system || c.personal));
}

/** What the user gets, for the personal scope or one product's; `null` for the others. */
function readEffective(scope) {
  const path = `/v1/users/${encodeURIComponent(state.me.sub)}/notifications/effective`;
  if (scope.product) return api("GET", `${path}?product_id=${encodeURIComponent(scope.product.id)}`);
  if (scope.id === "personal") return api("GET", path);
  return Promise.resolve(null);
}

/** A scope's stored document; a product the user keeps no settings for has none (404). */
async function readDocument(scope) {
  try {
    return await api("GET", scope.path);
  } catch (error) {
    if (scope.product && error instanceof ApiError && error.status === 404) return { events: {} };
    throw error;
  }
}

async function openScope(id) {
  const opened = ++state.opened;
  // A product's tab is known once the products are read.
  if (id.startsWith("product-")) await productsLoaded;
  if (opened !== state.opened) return;
  const scope = scopes(state.me).find((s) => s.id === id) || scopes(state.me)[0];
  state.scope = scope;
  renderTabs();
  $("scope-help").textContent = scope.help;
  $("saved").textContent = "";
  $("product-reset").hidden = !(scope.product && scope.product.has_settings);
  clearErrors();
  const [doc, effective] = await Promise.all([readDocument(scope), readEffective(scope), catalogueLoaded]);
  // Another tab was opened meanwhile: its answers are the ones to show (and save to).
  if (opened !== state.opened) return;
  state.document = doc;
  renderMatrix(scope, doc, effective);
}

/** Marks whether the user keeps settings for a product, and redraws the tabs; the help and
 * the remove button only while that product's tab is the one on screen. */
function productHasSettings(scope, has) {
  scope.product.has_settings = has;
  scope.help = productScope(state.me, scope.product).help;
  if (state.scope === scope) {
    $("scope-help").textContent = scope.help;
    $("product-reset").hidden = !has;
  }
  renderTabs();
}

/** Removes the user's settings for the product on screen: their personal settings apply. */
async function resetProduct() {
  const scope = state.scope;
  if (!scope || !scope.product) return;
  clearErrors();
  try {
    await api("DELETE", scope.path);
  } catch (error) {
    // Already gone (another tab): the outcome asked for.
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  }
  productHasSettings(scope, false);
  if (state.scope !== scope) return;
  const effective = await readEffective(scope);
  // Another tab opened meanwhile: its matrix stays.
  if (state.scope !== scope) return;
  state.document = { events: {} };
  renderMatrix(scope, state.document, effective);
  $("saved").textContent = "Removed: your personal settings apply.";
}

function renderMatrix(scope, doc, effective) {
  const shown = columns(scope);
  $("matrix-caption").textContent = `${scope.label} notification settings`;
  $("matrix-head").replaceChildren(
    el("th", { scope: "col" }, "Event"),
    ...shown.map((c) => el("th", { scope: "col" }, c.label)),
    effective ? el("th", { scope: "col" }, "You get") : null,
  );
  const rows = state.catalogue.items.map((event) => {
    const chosen = new Set((doc.events || {})[event.name] || []);
    const helpId = `help-${event.name}`;
    return el(
      "tr",
      { dataset: { event: event.name } },
      el(
        "th",
        { scope: "row" },
        el("span", { class: "event-label" }, event.label),
        event.help ? el("span", { class: "help", id: helpId }, event.help) : null,
        el("span", { class: "error", id: `error-${event.name}`, role: "alert" }),
      ),
      ...shown.map((channel) => {
        const name = `${event.name}.${channel.name}`;
        const id = `cell-${event.name}-${channel.name}`;
        return el(
          "td",
          {},
          el("input", {
            type: "checkbox",
            id,
            name,
            checked: chosen.has(channel.name),
            "aria-describedby": event.help ? helpId : false,
          }),
          el("label", { for: id, class: "visually-hidden" }, `${event.label}: ${channel.label}`),
          el("span", { class: "error", id: `error-${name}`, role: "alert" }),
        );
      }),
      effective ? el("td", { class: "effective" }, describeEffective(effective.events[event.name] || [])) : null,
    );
  });
  $("matrix-body").replaceChildren(...rows);
}

const SCOPE_WORDS = {
  personal: "your personal settings",
  product: "the product's settings",
  system: "the system settings (always sent for this event)",
};

/** "Slack: from your personal settings; Mail: switched off by the administrator". */
function describeEffective(channels) {
  if (channels.length === 0) return "Nothing";
  const label = (name) => (state.catalogue.channels.find((c) => c.name === name) || { label: name }).label;
  return channels
    .map((c) =>
      c.enabled_by_system
        ? `${label(c.channel)}: from ${c.scopes.map((s) => SCOPE_WORDS[s] || s).join(" and ")}`
        : `${label(c.channel)}: switched off by the administrator`,
    )
    .join("; ");
}

/** The document to save: the cells shown, and every channel of the stored document the
 * page does not show (a switched-off channel stays chosen). */
function documentFromForm(scope) {
  const shown = new Set(columns(scope).map((c) => c.name));
  const form = $("settings");
  const events = {};
  for (const event of state.catalogue.items) {
    const kept = ((state.document.events || {})[event.name] || []).filter((c) => !shown.has(c));
    const checked = [...shown].filter((c) => form.elements.namedItem(`${event.name}.${c}`)?.checked);
    events[event.name] = [...checked, ...kept];
  }
  return { events };
}

function clearErrors() {
  for (const node of document.querySelectorAll("#settings .error")) node.textContent = "";
  for (const node of document.querySelectorAll("#settings [aria-invalid]")) node.removeAttribute("aria-invalid");
}

/** Shows the API's error next to the cell (or row) its field names. */
function placeError(error, sent) {
  const match = /^events\.([a-z_]+)(?:\[(\d+)\])?/.exec(error.field || "");
  if (match) {
    const [, event, index] = match;
    const channel = index !== undefined ? (sent.events[event] || [])[Number(index)] : undefined;
    const cell = channel ? $(`error-${event}.${channel}`) : null;
    const target = cell || $(`error-${event}`);
    if (target) {
      target.textContent = error.message;
      const input = channel ? $(`cell-${event}-${channel}`) : null;
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
      return;
    }
  }
  $("form-error").textContent = error.message;
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  $("saved").textContent = "";
  const scope = state.scope;
  const sent = documentFromForm(scope);
  try {
    const saved = await api("PUT", scope.path, sent);
    if (scope.product) productHasSettings(scope, true);
    // Another tab opened meanwhile: its document and matrix stay as they are.
    if (state.scope !== scope) return;
    state.document = saved;
    // "Saved." once the row's effective column says what the save changed.
    const effective = await readEffective(scope).catch(() => null);
    if (state.scope !== scope) return;
    if (effective) renderMatrix(scope, state.document, effective);
    $("saved").textContent = "Saved.";
  } catch (error) {
    if (error instanceof ApiError) placeError(error, sent);
    else $("form-error").textContent = String(error);
  }
}

// ---------------------------------------------------------------------------------------------
// The bell

const bell = { cursor: null };

function alertsPath(suffix = "") {
  return `/v1/users/${encodeURIComponent(state.me.sub)}/alerts${suffix}`;
}

let shown = null;

/** Shows a count; when it changed and the alerts are open, their first page is read again. */
function onCount(count) {
  const node = document.querySelector("[data-unread-count]");
  node.textContent = String(count.unread);
  node.setAttribute("aria-label", `${count.unread} unread alerts`);
  const changed = shown && (shown.unread !== count.unread || shown.total !== count.total);
  shown = count;
  if (changed && !$("alerts").hidden) loadAlerts(false).catch(() => {});
}

async function refreshCount() {
  if (!token) return;
  try {
    onCount(await api("GET", alertsPath("/count")));
  } catch {
    // The count is tried again at the next tick.
  }
}

/** Follows herald-local's live count (server-sent events over fetch, so the token goes in
 * a header, not the URL). Answers false where there is no stream (on AWS: a 404), so the
 * page keeps to reading the count every 30 seconds. */
async function followCount() {
  let response;
  const hidden = new AbortController();
  const onHidden = () => document.hidden && hidden.abort();
  document.addEventListener("visibilitychange", onHidden);
  try {
    response = await fetch(alertsPath("/stream"), {
      headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
      signal: hidden.signal,
    });
  } catch {
    document.removeEventListener("visibilitychange", onHidden);
    return true;
  }
  if (response.status === 401) {
    document.removeEventListener("visibilitychange", onHidden);
    signOut("Your sign-in has expired or is not valid: open a new link.");
    return false;
  }
  if (!response.ok || !response.body) {
    document.removeEventListener("visibilitychange", onHidden);
    return false;
  }
  $("bell").dataset.live = "true";
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const lines = buffer.slice(0, end).split("\n");
        buffer = buffer.slice(end + 2);
        const event = (lines.find((l) => l.startsWith("event:")) || "").slice(6).trim();
        const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (event === "count" && data) onCount(JSON.parse(data));
      }
    }
  } catch {
    // The connection dropped, or the tab was hidden: followed again below.
  }
  document.removeEventListener("visibilitychange", onHidden);
  delete $("bell").dataset.live;
  return true;
}

/** A hidden tab holds no connection (browsers allow six per server): the stream is closed
 * while the tab is hidden and opened again, with a fresh count, when it is shown. */
function whenVisible() {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve) => {
    const shown = () => {
      if (document.hidden) return;
      document.removeEventListener("visibilitychange", shown);
      resolve();
    };
    document.addEventListener("visibilitychange", shown);
  });
}

async function live() {
  for (;;) {
    await whenVisible();
    if (!token || !(await followCount())) return;
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

/** Only http(s) links are followed. */
function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function alertItem(alert) {
  const href = alert.url ? safeUrl(alert.url) : null;
  const title = href ? el("a", { href, rel: "noopener noreferrer" }, alert.title) : el("span", {}, alert.title);
  return el(
    "li",
    { class: alert.read ? "alert read" : "alert unread", dataset: { alertId: alert.id } },
    el("div", { class: "alert-title" }, title),
    alert.description ? el("p", { class: "alert-description" }, alert.description) : null,
    el(
      "div",
      { class: "alert-meta" },
      el("span", {}, alert.source),
      " · ",
      el("time", { datetime: alert.created_at }, new Date(alert.created_at).toLocaleString()),
    ),
    el(
      "div",
      { class: "alert-actions" },
      alert.read ? null : el("button", { type: "button", dataset: { action: "read" } }, "Mark read"),
      el("button", { type: "button", dataset: { action: "delete" } }, "Delete"),
    ),
  );
}

async function loadAlerts(more) {
  const query = new URLSearchParams({ limit: String(ALERTS_PAGE) });
  if (more && bell.cursor) query.set("cursor", bell.cursor);
  const page = await api("GET", alertsPath(`?${query}`));
  const list = $("alerts-list");
  const items = page.items.map(alertItem);
  if (more) list.append(...items);
  else list.replaceChildren(...items);
  bell.cursor = page.next_cursor;
  $("alerts-more").hidden = !bell.cursor;
  $("alerts-empty").hidden = list.children.length > 0;
}

async function toggleAlerts() {
  const panel = $("alerts");
  const open = panel.hidden;
  panel.hidden = !open;
  $("bell").setAttribute("aria-expanded", String(open));
  if (open) {
    $("alerts-error").textContent = "";
    await loadAlerts(false);
    $("alerts-title").focus();
  } else {
    $("bell").focus();
  }
}

/** Shows why an action in the alerts failed. */
function alertsFailed(error) {
  $("alerts-error").textContent = error.message || String(error);
}

async function onAlertAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  $("alerts-error").textContent = "";
  const item = button.closest("[data-alert-id]");
  const id = item.dataset.alertId;
  if (button.dataset.action === "read") {
    await api("POST", alertsPath("/read"), { ids: [id] });
    item.classList.replace("unread", "read");
    button.remove();
  } else {
    await api("DELETE", alertsPath(`/${encodeURIComponent(id)}`));
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    (next?.querySelector("button") || $("alerts-title")).focus();
    $("alerts-empty").hidden = $("alerts-list").children.length > 0;
  }
  await refreshCount();
}

async function readAll() {
  await api("POST", alertsPath("/read"));
  await loadAlerts(false);
  await refreshCount();
}

// ---------------------------------------------------------------------------------------------
// Webhooks

const webhooks = { items: [], editing: null };

const STATE_WORDS = {
  active: "Active",
  inactive_tmp: "Paused after errors (retried later)",
  inactive_permanent: "Off after errors",
};

function webhookState(w) {
  const words = [STATE_WORDS[w.status] || w.status];
  if (w.note) words.push(w.note);
  if (w.last_error) words.push(`last error ${new Date(w.last_error).toLocaleString()}`);
  return words.join(" · ");
}

async function openWebhooks() {
  const opened = ++state.opened;
  const admin = state.me.role === "admin";
  $("webhooks-help").textContent = admin
    ? "Every webhook: system ones (no owner) get what the system settings send, a user's get what that user's settings send."
    : "Your own webhooks: each gets what your settings send to webhooks.";
  $("webhooks-caption").textContent = admin ? "Every webhook endpoint" : "Your webhook endpoints";
  for (const node of document.querySelectorAll("#webhooks [data-admin]")) node.hidden = !admin;
  const page = await api("GET", "/v1/webhooks");
  if (opened !== state.opened) return;
  webhooks.items = page.items;
  renderWebhooks();
}

function renderWebhooks() {
  const admin = state.me.role === "admin";
  $("webhooks-body").replaceChildren(
    ...webhooks.items.map((w) =>
      el(
        "tr",
        { dataset: { webhookId: w.id } },
        el("th", { scope: "row" }, w.name),
        el("td", { class: "url" }, w.url),
        admin ? el("td", {}, w.owner || "system") : null,
        el("td", {}, w.format === "defectdojo" ? "DefectDojo" : "Herald"),
        el("td", { class: `state state-${w.status}` }, webhookState(w)),
        el(
          "td",
          { class: "row-actions" },
          el("button", { type: "button", dataset: { action: "edit" }, "aria-label": `Edit ${w.name}` }, "Edit"),
          el("button", { type: "button", dataset: { action: "delete" }, "aria-label": `Delete ${w.name}` }, "Delete"),
        ),
      ),
    ),
  );
  $("webhooks-empty").hidden = webhooks.items.length > 0;
}

function webhookForm(w) {
  webhooks.editing = w;
  const form = $("webhook-form");
  form.reset();
  clearWebhookErrors();
  $("webhook-form-title").textContent = w ? `Edit ${w.name}` : "Add a webhook";
  $("wh-submit").textContent = w ? "Save webhook" : "Add webhook";
  $("wh-cancel").hidden = !w;
  $("wh-name").value = w ? w.name : "";
  $("wh-url").value = w ? w.url : "";
  $("wh-format").value = w ? w.format : "herald";
  $("wh-header-name").value = (w && w.header_name) || "";
  $("wh-owner").value = (w && w.owner) || "";
  $("wh-owner").disabled = Boolean(w);
  $("wh-header-value-state").textContent = w && w.header_value_set ? "A value is set: leave empty to keep it." : "";
  $("wh-secret-state").textContent = w && w.secret_set ? "A secret is set: leave empty to keep it." : "";
  // A stored secret can be replaced (type a new one) or removed (this box).
  $("wh-header-value-clear-row").hidden = !(w && w.header_value_set);
  $("wh-secret-clear-row").hidden = !(w && w.secret_set);
  for (const [box, input] of [["wh-header-value-clear", "wh-header-value"], ["wh-secret-clear", "wh-secret"]]) {
    $(box).checked = false;
    $(input).disabled = false;
  }
  if (w) $("wh-name").focus();
}

function clearWebhookErrors() {
  for (const node of document.querySelectorAll("#webhook-form .error")) node.textContent = "";
}

/** What the form asks for: on an edit, only what changed (an empty secret keeps the stored one). */
function webhookBody() {
  const w = webhooks.editing;
  const value = (id) => $(id).value.trim();
  const body = {};
  const set = (field, next, current) => {
    if (!w || next !== current) body[field] = next;
  };
  set("name", value("wh-name"), w && w.name);
  set("url", value("wh-url"), w && w.url);
  set("format", $("wh-format").value, w && w.format);
  set("header_name", value("wh-header-name") || null, w && (w.header_name || null));
  if (w && $("wh-header-value-clear").checked) body.header_value = null;
  else if ($("wh-header-value").value) body.header_value = $("wh-header-value").value;
  if (w && $("wh-secret-clear").checked) body.secret = null;
  else if ($("wh-secret").value) body.secret = $("wh-secret").value;
  if (!w && state.me.role === "admin") body.owner = value("wh-owner") || null;
  return body;
}

async function saveWebhook(event) {
  event.preventDefault();
  clearWebhookErrors();
  $("wh-saved").textContent = "";
  const w = webhooks.editing;
  $("wh-saved").textContent = "Pinging…";
  try {
    const saved = w
      ? await api("PUT", `/v1/webhooks/${encodeURIComponent(w.id)}`, webhookBody())
      : await api("POST", "/v1/webhooks", webhookBody());
    await openWebhooks();
    webhookForm(null);
    $("wh-saved").textContent = `Saved ${saved.name}: the ping was answered.`;
  } catch (error) {
    $("wh-saved").textContent = "";
    const field = (error.field || "").split(/[.[]/)[0];
    const target = field && $(`wh-error-${field}`);
    (target || $("wh-error")).textContent = error.message || String(error);
    const input = field && document.querySelector(`#webhook-form [name="${field}"]`);
    if (input) input.focus();
  }
}

async function onWebhookAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("[data-webhook-id]");
  const w = webhooks.items.find((item) => item.id === row.dataset.webhookId);
  if (!w) return;
  if (button.dataset.action === "edit") {
    webhookForm(w);
    return;
  }
  if (!window.confirm(`Delete the webhook ${w.name}?`)) return;
  await api("DELETE", `/v1/webhooks/${encodeURIComponent(w.id)}`);
  if (webhooks.editing && webhooks.editing.id === w.id) webhookForm(null);
  await openWebhooks();
  $("wh-saved").textContent = `Deleted ${w.name}.`;
}

// ---------------------------------------------------------------------------------------------
// System settings (administrators)

/** The form: DefectDojo's system settings fields, grouped as its page groups them. */
const SYSTEM_FIELDS = [
  ["Mail", [
    ["enable_mail_notifications", "Send mail", "bool"],
    ["mail_notifications_to", "System mail address", "text"],
    ["email_from", "From address", "text"],
  ]],
  ["Slack", [
    ["enable_slack_notifications", "Send to Slack", "bool"],
    ["slack_token", "Bot token", "secret"],
    ["slack_channel", "System channel", "text"],
    ["slack_username", "Name shown as the sender", "text"],
  ]],
  ["Microsoft Teams", [
    ["enable_msteams_notifications", "Send to Teams", "bool"],
    ["msteams_url", "Incoming webhook or Workflows URL", "secret"],
  ]],
  ["Webhooks", [
    ["enable_webhooks_notifications", "Send to webhooks", "bool"],
    ["webhooks_notifications_timeout", "Timeout in seconds (1 to 60)", "number"],
  ]],
  ["Messages", [
    ["team_name", "Team name", "text"],
    ["site_url", "Site URL (the links in messages)", "text"],
    ["disclaimer_notifications", "Disclaimer added to every message", "textarea"],
  ]],
  ["Reminders", [
    ["enable_notify_sla_active", "SLA reminders for active findings", "bool"],
    ["enable_notify_sla_active_verified", "SLA reminders for active, verified findings", "bool"],
    ["enable_notify_sla_exponential_backoff", "Remind less often as a breach ages", "bool"],
    ["risk_acceptance_notify_before_expiration", "Days before a risk acceptance expires to remind", "number"],
    ["engagement_auto_close", "Close engagements after their end date", "bool"],
    ["engagement_auto_close_days", "Days after the end date to close them", "number"],
  ]],
  ["Alerts", [
    ["max_alerts_per_user", "Alerts kept per user (-1 keeps every one)", "number"],
    ["system_level_trump", "Events whose explicit recipients also get the system channels", "events"],
  ]],
  ["DefectDojo", [
    ["defectdojo_instance", "DefectDojo's URL (must match X-DefectDojo-Instance)", "text"],
    ["defectdojo_webhook_key", "Key DefectDojo's webhooks send", "secret"],
  ]],
];

const system = { stored: null };

function systemField([name, label, kind]) {
  const id = `sys-${name}`;
  const error = el("span", { class: "error", id: `sys-error-${name}`, role: "alert" });
  const value = system.stored[name];
  if (kind === "bool") {
    return el("div", { class: "field check" },
      el("input", { type: "checkbox", id, name, checked: Boolean(value) }),
      el("label", { for: id }, label), error);
  }
  if (kind === "secret") {
    const set = Boolean(system.stored[`${name}_set`]);
    return el("div", { class: "field" },
      el("label", { for: id }, label),
      el("span", { class: "help", id: `${id}-state` }, set ? "Set. Type a new one to replace it." : "Not set."),
      el("input", { id, name, type: "password", autocomplete: "new-password", "aria-describedby": `${id}-state` }),
      set
        ? el("span", { class: "check" },
          el("input", { type: "checkbox", id: `${id}-clear`, name: `${name}.clear` }),
          el("label", { for: `${id}-clear` }, `Clear the ${label.toLowerCase()}`))
        : null,
      error);
  }
  if (kind === "events") {
    const chosen = new Set(value || []);
    return el("fieldset", { class: "field", id },
      el("legend", {}, label),
      ...state.catalogue.items.map((event) =>
        el("span", { class: "check" },
          el("input", { type: "checkbox", id: `${id}-${event.name}`, name: `${name}.${event.name}`, checked: chosen.has(event.name) }),
          el("label", { for: `${id}-${event.name}` }, event.label))),
      error);
  }
  const input = kind === "textarea"
    ? el("textarea", { id, name, rows: 3 }, value || "")
    : el("input", { id, name, type: kind === "number" ? "number" : "text", value: value ?? "" });
  return el("div", { class: "field" }, el("label", { for: id }, label), input, error);
}

async function openSystem() {
  const opened = ++state.opened;
  const [stored] = await Promise.all([api("GET", "/v1/system/settings"), catalogueLoaded]);
  if (opened !== state.opened) return;
  system.stored = stored;
  $("system-fields").replaceChildren(
    ...SYSTEM_FIELDS.map(([group, fields]) =>
      el("fieldset", { class: "group" }, el("legend", {}, group), ...fields.map(systemField))),
  );
}

/** An error the page finds in a form before anything is sent, at the field it names. */
class FormError extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

/** The fields that changed; a secret only when replaced (its value) or cleared (null). */
function systemPatch() {
  const form = $("system-form");
  const patch = {};
  for (const [, fields] of SYSTEM_FIELDS) {
    for (const [name, , kind] of fields) {
      const stored = system.stored[name];
      if (kind === "secret") {
        const typed = form.elements.namedItem(name).value;
        if (typed) patch[name] = typed;
        else if (form.elements.namedItem(`${name}.clear`)?.checked) patch[name] = null;
      } else if (kind === "bool") {
        const next = form.elements.namedItem(name).checked;
        if (next !== Boolean(stored)) patch[name] = next;
      } else if (kind === "events") {
        const next = state.catalogue.items
          .map((e) => e.name)
          .filter((e) => form.elements.namedItem(`${name}.${e}`).checked);
        if (JSON.stringify([...next].sort()) !== JSON.stringify([...(stored || [])].sort())) patch[name] = next;
      } else if (kind === "number") {
        const input = form.elements.namedItem(name);
        // What the browser cannot read as a number is refused here, not sent as a clear.
        if (input.validity.badInput) throw new FormError(name, "must be a whole number");
        const next = input.value === "" ? null : Number(input.value);
        if (next !== (stored ?? null)) patch[name] = next;
      } else {
        // Sent as typed when it differs from what is stored: the API says what it refuses.
        const next = form.elements.namedItem(name).value;
        if (next !== (stored ?? "")) patch[name] = next;
      }
    }
  }
  return patch;
}

async function saveSystem(event) {
  event.preventDefault();
  for (const node of document.querySelectorAll("#system-form .error")) node.textContent = "";
  $("sys-saved").textContent = "";
  try {
    const patch = systemPatch();
    if (Object.keys(patch).length === 0) {
      $("sys-saved").textContent = "Nothing changed.";
      return;
    }
    await api("PUT", "/v1/system/settings", patch);
    await openSystem();
    state.catalogue = await api("GET", "/v1/event-types");
    $("sys-saved").textContent = `Saved: ${Object.keys(patch).join(", ")}.`;
  } catch (error) {
    const field = (error.field || "").split(/[.[]/)[0];
    const target = field && $(`sys-error-${field}`);
    (target || $("sys-error")).textContent = error.message || String(error);
    $(`sys-${field}`)?.focus?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Start

/** Shows the page a fragment names: `#webhooks`, `#system-settings` (administrators), or a
 * settings scope (`#personal`, ...). */
async function route(target) {
  const admin = state.me.role === "admin";
  const view = target === "webhooks" || (target === "system-settings" && admin) ? target : "notifications";
  for (const id of ["notifications", "webhooks", "system-settings"]) $(id).hidden = id !== view;
  for (const link of document.querySelectorAll("#views a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "webhooks") await openWebhooks();
  else if (view === "system-settings") await openSystem();
  else await openScope(target || "personal");
}

async function start() {
  token = takeToken();
  const me = token && claims(token);
  if (!me) {
    signOut(token ? "This sign-in link is not valid: open a new one." : "");
    return;
  }
  if (typeof me.exp === "number" && me.exp * 1000 < Date.now()) {
    signOut("Your sign-in has expired: open a new link.");
    return;
  }
  state.me = me;
  $("who").textContent = `${me.sub}${me.role === "admin" ? " (administrator)" : ""}`;
  $("signed-out").hidden = true;
  $("notifications").hidden = false;
  $("bell").hidden = false;
  $("settings").addEventListener("submit", save);
  $("product-reset").addEventListener("click", () =>
    resetProduct().catch((error) => ($("form-error").textContent = error.message || String(error))),
  );
  $("tabs").addEventListener("change", (event) => {
    if (event.target.id !== "product-picker" || !event.target.value) return;
    const target = event.target.value;
    history.pushState(null, "", `#${target}`);
    route(target).catch((error) => ($("form-error").textContent = error.message || String(error)));
  });
  const guarded = (action) => (event) => action(event).catch(alertsFailed);
  $("bell").addEventListener("click", guarded(toggleAlerts));
  $("alerts-close").addEventListener("click", guarded(toggleAlerts));
  $("alerts-read-all").addEventListener("click", guarded(readAll));
  $("alerts-more").addEventListener("click", guarded(() => loadAlerts(true)));
  $("alerts-list").addEventListener("click", guarded(onAlertAction));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("alerts").hidden) guarded(toggleAlerts)(event);
  });
  $("views").hidden = false;
  for (const node of document.querySelectorAll("#views [data-admin]")) node.hidden = me.role !== "admin";
  $("system-form").addEventListener("submit", saveSystem);
  $("webhook-form").addEventListener("submit", saveWebhook);
  $("wh-cancel").addEventListener("click", () => webhookForm(null));
  for (const [box, input] of [["wh-header-value-clear", "wh-header-value"], ["wh-secret-clear", "wh-secret"]]) {
    $(box).addEventListener("change", () => {
      $(input).disabled = $(box).checked;
      if ($(box).checked) $(input).value = "";
    });
  }
  $("webhooks-body").addEventListener("click", (event) =>
    onWebhookAction(event).catch((error) => ($("wh-error").textContent = error.message || String(error))),
  );
  for (const nav of [$("tabs"), $("views")]) {
    nav.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-scope], a[data-view]");
      if (!link) return;
      event.preventDefault();
      const target = link.getAttribute("href").slice(1);
      history.pushState(null, "", `#${target}`);
      route(target).catch((error) => ($("form-error").textContent = error.message || String(error)));
    });
  }
  try {
    // The catalogue is read beside the first view's own reads, not before them.
    catalogueLoaded = api("GET", "/v1/event-types").then((catalogue) => {
      state.catalogue = catalogue;
    });
    productsLoaded = api("GET", `/v1/users/${encodeURIComponent(me.sub)}/products`).then(
      (answer) => {
        state.products = answer.products;
        if (state.scope) renderTabs();
      },
      (error) => {
        // The tabs go without products; the rest of the page works.
        $("form-error").textContent = `Your products could not be read: ${error.message || error}`;
      },
    );
    await Promise.all([route(location.hash.slice(1)), refreshCount(), catalogueLoaded, productsLoaded]);
    document.body.dataset.ready = "true";
  } catch (error) {
    $("form-error").textContent = String(error.message || error);
  }
  setInterval(() => $("bell").dataset.live || refreshCount(), COUNT_EVERY_MS);
  live();
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshCount();
  });
}

// A new sign-in link opened in this tab changes only the fragment: start over with it.
window.addEventListener("hashchange", () => {
  if (new URLSearchParams(location.hash.slice(1)).has("token")) location.reload();
});

// Back and forward go between the views and tabs opened.
window.addEventListener("popstate", () => {
  if (state.me) route(location.hash.slice(1)).catch(() => {});
});

start();
