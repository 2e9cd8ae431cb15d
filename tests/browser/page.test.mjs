// Herald's page in a real browser: Debian's Chromium, driven by playwright-core, against a
// herald-local started on a free loopback port with a data directory of its own.
//
//   node --test tests/browser/
//
// HERALD_LOCAL_BIN names the binary (default target/debug/herald-local), CHROMIUM the browser
// (default /usr/bin/chromium). A failing test leaves a screenshot in target/browser/.

import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import http from "node:http";
import { mkdtempSync, readFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.HERALD_LOCAL_BIN || path.join(ROOT, "target/debug/herald-local");
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = path.join(ROOT, "target/browser");
// The README's pictures of the page, made anew by every run so they show today's page.
const README_SHOTS = path.join(ROOT, "tests/browser/screenshots");

async function readmeShot(name) {
  mkdirSync(README_SHOTS, { recursive: true });
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(README_SHOTS, name) });
}

for (const [what, file, how] of [
  ["herald-local", BIN, "cargo build -p herald-local"],
  ["Chromium", BROWSER, "scripts/test.sh (it installs Debian's chromium)"],
]) {
  if (!existsSync(file)) {
    throw new Error(`${what} is not at ${file}: run ${how}`);
  }
}

let server;
let dataDir;
let base;
let browser;
let page;

/** herald-local's environment: the data directory's own token secret, Slack nowhere. */
function env() {
  const env = { ...process.env, SLACK_API_URL: "http://127.0.0.1:9/api" };
  delete env.HERALD_JWT_SECRET;
  return env;
}

function cli(...args) {
  return execFileSync(BIN, [...args, "--data-dir", dataDir], { env: env(), encoding: "utf8" }).trim();
}

async function waitForAddress() {
  const file = path.join(dataDir, "server-address");
  for (let i = 0; i < 600; i++) {
    if (existsSync(file)) {
      const address = readFileSync(file, "utf8").trim();
      if (address.startsWith("http://")) {
        const ok = await fetch(`${address}/health`).then((r) => r.ok, () => false);
        if (ok) return address;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`herald-local did not start: ${output}`);
}

let output = "";

async function call(method, urlPath, body, token = adminToken) {
  const response = await fetch(`${base}${urlPath}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}

let adminToken;
let serviceToken;

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), "herald-page-"));
  // The webhook receivers of the tests listen on loopback.
  server = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--check-interval", "0"], {
    env: { ...env(), HERALD_ALLOW_PRIVATE_TARGETS: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout.on("data", (d) => (output += d));
  server.stderr.on("data", (d) => (output += d));
  base = await waitForAddress();
  adminToken = cli("token", "--sub", "root", "--role", "admin");
  serviceToken = cli("token", "--sub", "platform", "--role", "service");
  for (const [user, admin] of [["alice", false], ["ada", true]]) {
    const r = await call("PUT", `/v1/users/${user}`, { email: `${user}@example.com`, is_admin: admin }, serviceToken);
    assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
  }
  // Mail on, so the matrix has a column besides the bell.
  const s = await call("PUT", "/v1/system/settings", { enable_mail_notifications: true });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  browser = await chromium.launch({
    executablePath: BROWSER,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

afterEach(async (t) => {
  if (page && t.passed === false) {
    mkdirSync(SHOTS, { recursive: true });
    const name = t.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 80);
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }).catch(() => {});
  }
  await page?.context().close();
  page = null;
});

/** A new tab signed in by the link `herald-local login` prints. */
async function signIn(...loginArgs) {
  const options = typeof loginArgs.at(-1) === "object" ? loginArgs.pop() : {};
  const link = cli("login", ...loginArgs);
  assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/#token=[\w-]+\.[\w-]+\.[\w-]+$/, link);
  const context = await browser.newContext(options);
  page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(link);
  await page.waitForSelector("body[data-ready=true]", { timeout: 10_000 }).catch(() => {
    throw new Error(`the page did not get ready: ${errors.join("\n")}`);
  });
  return { link, errors };
}

test("the page is served with a strict Content-Security-Policy and no framing", async () => {
  const r = await fetch(`${base}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/html/);
  const csp = r.headers.get("content-security-policy");
  assert.ok(csp, "a Content-Security-Policy header");
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(r.headers.get("x-frame-options"), "DENY");
  assert.equal(r.headers.get("x-content-type-options"), "nosniff");
  const html = await r.text();
  assert.doesNotMatch(html, /<script>|\son[a-z]+=/i, "no inline script or handler");
  const js = await fetch(`${base}/ui/app.js`);
  assert.match(js.headers.get("content-type"), /javascript/);
  const missing = await fetch(`${base}/ui/nothing.js`);
  assert.equal(missing.status, 404);
});

test("a sign-in link lands on the personal settings, and a save reaches the API", async () => {
  const { errors } = await signIn("--user", "alice");
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
  assert.equal(await page.locator("#who").textContent(), "alice");
  assert.equal(await page.locator("nav#tabs a").allTextContents().then((t) => t.join(",")), "Personal");
  assert.equal(await page.locator('#tabs a[aria-current="page"]').textContent(), "Personal");
  assert.equal(await page.locator('#views a[aria-current="page"]').textContent(), "Notifications");
  // One column per switched-on channel: the bell and mail; Teams never at personal scope.
  const heads = await page.locator("#matrix-head th").allTextContents();
  assert.deepEqual(heads, ["Event", "Alert", "Mail", "You get"]);
  assert.equal(await page.locator('input[name="scan_added.msteams"]').count(), 0);
  const cell = page.locator('form#settings input[type=checkbox][name="scan_added.mail"]');
  assert.equal(await cell.isChecked(), false);
  // Keyboard only: focus the cell, toggle it with the space bar, then Save.
  await cell.focus();
  await page.keyboard.press("Space");
  assert.equal(await cell.isChecked(), true);
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#saved", { hasText: "Saved." }).waitFor();
  const stored = await call("GET", "/v1/users/alice/notifications");
  assert.deepEqual(stored.body.events.scan_added.sort(), ["alert", "mail"]);
  // The effective column says where it comes from.
  const row = page.locator('tr[data-event="scan_added"] td.effective');
  assert.match(await row.textContent(), /Mail: from your personal settings/);
  assert.deepEqual(errors, []);
  await readmeShot("matrix.png");
});

test("a channel the administrator switched off is kept on save and said to be off", async () => {
  const put = await call("PUT", "/v1/users/alice/notifications", {
    events: { scan_added: ["alert", "slack"] },
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  await signIn("--user", "alice");
  assert.equal(await page.locator('input[name="scan_added.slack"]').count(), 0, "Slack is off: no column");
  const effective = page.locator('tr[data-event="scan_added"] td.effective');
  assert.match(await effective.textContent(), /Slack: switched off by the administrator/);
  await page.locator('input[name="scan_added.mail"]').check();
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#saved", { hasText: "Saved." }).waitFor();
  const stored = await call("GET", "/v1/users/alice/notifications");
  assert.deepEqual(stored.body.events.scan_added.sort(), ["alert", "mail", "slack"]);
});

test("the API's validation error is shown at the cell it names", async () => {
  await signIn("--user", "ada", "--admin");
  await page.locator('input[name="scan_added.mail"]').check();
  // The page's save goes to the real API with its second channel made one the scope cannot
  // take, and the page is given the API's answer: a 422 naming `events.scan_added[1]`.
  await page.route("**/v1/users/ada/notifications", async (route) => {
    if (route.request().method() !== "PUT") return route.continue();
    const sent = route.request().postDataJSON();
    assert.deepEqual(sent.events.scan_added, ["alert", "mail"]);
    sent.events.scan_added[1] = "msteams";
    const answer = await call("PUT", "/v1/users/ada/notifications", sent);
    assert.equal(answer.status, 422);
    assert.equal(answer.body.error.field, "events.scan_added[1]");
    return route.fulfill({ status: answer.status, contentType: "application/json", body: JSON.stringify(answer.body) });
  });
  await page.getByRole("button", { name: "Save" }).click();
  const error = page.locator("#error-scan_added\\.mail");
  await error.waitFor();
  assert.match(await error.textContent(), /msteams is available at system scope only/);
  assert.equal(await page.locator("#cell-scan_added-mail").getAttribute("aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.name), "scan_added.mail");
  assert.equal(await page.locator("#saved").textContent(), "");
});

test("an administrator sees System and Template; a user never does, and the API agrees", async () => {
  await signIn("--user", "ada", "--admin");
  const tabs = await page.locator("nav#tabs a").allTextContents();
  assert.deepEqual(tabs, ["Personal", "System", "Template"]);
  await page.getByRole("link", { name: "System", exact: true }).click();
  await page.locator("#matrix-caption", { hasText: "System notification settings" }).waitFor();
  const userToken = cli("token", "--sub", "alice", "--role", "user");
  const refused = await call("GET", "/v1/notifications/system", undefined, userToken);
  assert.equal(refused.status, 403);
});

test("the bell counts unread alerts, shows them as text, and marking read lowers the count", async () => {
  const title = '<img src=x onerror="window.__xss=1">';
  for (const t of [title, "Second scan"]) {
    const r = await call(
      "POST",
      "/v1/events",
      { type: "user_mentioned", title: t, description: "<b>not bold</b>", recipients: ["alice"] },
      serviceToken,
    );
    assert.equal(r.status, 202, JSON.stringify(r.body));
  }
  let unread;
  for (let i = 0; i < 100; i++) {
    unread = (await call("GET", "/v1/users/alice/alerts/count")).body.unread;
    if (unread >= 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await signIn("--user", "alice");
  const count = page.locator("[data-unread-count]");
  assert.equal(await count.textContent(), String(unread));
  await count.click();
  const items = page.locator("#alerts-list [data-alert-id]");
  await items.first().waitFor();
  const texts = await items.locator(".alert-title").allTextContents();
  assert.ok(texts.includes(title), `the title shows as text: ${texts}`);
  assert.equal(await page.locator("#alerts-list img").count(), 0, "no element from a title");
  assert.equal(await page.locator("#alerts-list b").count(), 0, "no element from a description");
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await readmeShot("bell.png");
  await items.first().getByRole("button", { name: "Mark read" }).click();
  await page.locator("[data-unread-count]", { hasText: String(unread - 1) }).waitFor();
  assert.equal((await call("GET", "/v1/users/alice/alerts/count")).body.unread, unread - 1);
  await page.getByRole("button", { name: "Mark all read" }).click();
  await page.locator("[data-unread-count]", { hasText: "0" }).waitFor();
});

test("a new alert reaches an open bell without reloading the page", async () => {
  await signIn("--user", "alice");
  await page.locator('#bell[data-live="true"]').waitFor();
  await page.evaluate(() => (window.__sameDocument = true));
  const before = Number(await page.locator("[data-unread-count]").textContent());
  await page.locator("[data-unread-count]").click();
  await page.locator("#alerts").waitFor();
  const r = await call("POST", "/v1/events", { type: "user_mentioned", title: "Live one", recipients: ["alice"] }, serviceToken);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await page.locator("[data-unread-count]", { hasText: String(before + 1) }).waitFor({ timeout: 10_000 });
  await page.locator("#alerts-list [data-alert-id]", { hasText: "Live one" }).waitFor({ timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
});

test("no token, a broken one or an expired one shows the sign-in help", async () => {
  const context = await browser.newContext();
  page = await context.newPage();
  await page.goto(`${base}/`);
  await page.locator("#signed-out").waitFor();
  assert.equal(await page.locator("#notifications").isHidden(), true);
  // Each link opened in the same tab (only the fragment changes) is taken at once.
  await page.goto(`${base}/#token=not-a-token`);
  await page.locator("#signed-out-why", { hasText: "not valid" }).waitFor();
  const expired = cli("token", "--sub", "alice", "--role", "user", "--ttl", "1");
  await new Promise((r) => setTimeout(r, 2100));
  await page.goto(`${base}/#token=${expired}`);
  await page.locator("#signed-out-why", { hasText: "expired" }).waitFor();
  await page.goto(cli("login", "--user", "alice"));
  await page.waitForSelector("body[data-ready=true]");
  assert.equal(await page.locator("#who").textContent(), "alice");
});

/** A receiver on loopback answering `status` to every POST; answers its URL and what it got. */
async function receiver(status) {
  const got = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      got.push({ headers: req.headers, body });
      res.writeHead(status, { "Content-Type": "text/plain" });
      res.end(status === 200 ? "ok" : "nope");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/hook`, got, close: () => server.close() };
}

test("a webhook whose ping fails says why and is not kept; one that answers is listed, edited and deleted", async () => {
  const failing = await receiver(500);
  const answering = await receiver(200);
  try {
    await signIn("--user", "alice");
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.locator("#webhooks").waitFor();
    assert.equal(await page.locator("#webhooks-empty").isVisible(), true);
    assert.equal(await page.locator("#wh-owner").isVisible(), false, "a user names no owner");
    await page.getByLabel("Name", { exact: true }).fill("SIEM");
    await page.getByLabel("URL", { exact: true }).fill(failing.url);
    await page.getByRole("button", { name: "Add webhook" }).click();
    const why = page.locator("#wh-error-url");
    await why.waitFor();
    assert.match(await why.textContent(), /ping failed/);
    assert.match(await why.textContent(), /500/);
    assert.equal(failing.got.length, 1, "the ping reached the receiver");
    assert.deepEqual((await call("GET", "/v1/webhooks")).body.items, [], "nothing was kept");

    await page.getByLabel("URL", { exact: true }).fill(answering.url);
    const secret = "whsec_" + Buffer.alloc(32, 7).toString("base64");
    await page.getByLabel("Signing secret", { exact: false }).fill(secret);
    await page.getByRole("button", { name: "Add webhook" }).click();
    await page.locator("#wh-saved", { hasText: "Saved SIEM" }).waitFor();
    const row = page.locator("#webhooks-body tr", { hasText: "SIEM" });
    assert.match(await row.locator("td.state").textContent(), /^Active/);
    const listed = (await call("GET", "/v1/webhooks")).body.items;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].owner, "alice");
    assert.equal(listed[0].secret_set, true);
    assert.ok(answering.got[0].headers["webhook-signature"], "the ping was signed");
    assert.equal(await page.locator("#wh-secret").inputValue(), "", "the form let go of the secret");
    assert.equal((await page.content()).includes(secret.slice(6)), false, "the secret is nowhere on the page");

    await row.getByRole("button", { name: "Edit SIEM" }).click();
    assert.match(await page.locator("#wh-secret-state").textContent(), /leave empty to keep it/);
    await page.getByLabel("Name", { exact: true }).fill("SIEM (prod)");
    await page.getByRole("button", { name: "Save webhook" }).click();
    await page.locator("#wh-saved", { hasText: "Saved SIEM (prod)" }).waitFor();
    const edited = (await call("GET", "/v1/webhooks")).body.items[0];
    assert.equal(edited.name, "SIEM (prod)");
    assert.equal(edited.secret_set, true, "an empty secret field kept the secret");

    // Removing the secret: the box says what it does, and the next ping goes unsigned.
    await row.getByRole("button", { name: "Edit SIEM (prod)" }).click();
    assert.equal(await page.locator("#wh-header-value-clear-row").isHidden(), true, "no header value to remove");
    await page.getByLabel("Remove the stored secret").check();
    assert.equal(await page.locator("#wh-secret").isDisabled(), true);
    const pings = answering.got.length;
    await page.getByRole("button", { name: "Save webhook" }).click();
    await page.locator("#wh-saved", { hasText: "Saved SIEM (prod)" }).waitFor();
    assert.equal((await call("GET", "/v1/webhooks")).body.items[0].secret_set, false);
    assert.equal(answering.got.length, pings + 1);
    assert.equal(answering.got.at(-1).headers["webhook-signature"], undefined, "the ping went unsigned");
    await row.getByRole("button", { name: "Edit SIEM (prod)" }).click();
    assert.equal(await page.locator("#wh-secret-clear-row").isHidden(), true, "nothing left to remove");
    assert.equal(await page.locator("#wh-secret").isDisabled(), false);
    await page.getByRole("button", { name: "Cancel" }).click();

    page.once("dialog", (dialog) => dialog.accept());
    await page.getByRole("button", { name: "Delete SIEM (prod)" }).click();
    await page.locator("#wh-saved", { hasText: "Deleted SIEM (prod)" }).waitFor();
    assert.deepEqual((await call("GET", "/v1/webhooks")).body.items, []);
  } finally {
    failing.close();
    answering.close();
  }
});

test("an administrator sees every webhook with its owner and can add a system one", async () => {
  const answering = await receiver(200);
  try {
    await signIn("--user", "ada", "--admin");
    await page.goto(`${base}/#webhooks`);
    await page.reload();
    await page.locator("#webhooks").waitFor();
    assert.equal(await page.locator("#wh-owner").isVisible(), true);
    await page.getByLabel("Name", { exact: true }).fill("Audit log");
    await page.getByLabel("URL", { exact: true }).fill(answering.url);
    await page.getByRole("button", { name: "Add webhook" }).click();
    await page.locator("#wh-saved", { hasText: "Saved Audit log" }).waitFor();
    const row = page.locator("#webhooks-body tr", { hasText: "Audit log" });
    assert.match(await row.textContent(), /system/);
    await readmeShot("webhooks.png");
    const listed = (await call("GET", "/v1/webhooks")).body.items;
    assert.equal(listed.find((w) => w.name === "Audit log").owner, null);
  } finally {
    answering.close();
  }
});

test("an administrator's system settings: switches and fields saved, a secret set but never shown, an error at its field", async () => {
  await signIn("--user", "ada", "--admin");
  await page.getByRole("link", { name: "System settings" }).click();
  await page.locator("#system-fields fieldset").first().waitFor();
  assert.equal(await page.locator("#sys-slack_token-state").textContent(), "Not set.");
  // The Teams URL carries its signature: write-only like the token.
  assert.equal(await page.locator("#sys-msteams_url-state").textContent(), "Not set.");
  await page.getByLabel("Send to Slack").check();
  await page.getByLabel("System channel").fill("#appsec");
  await page.getByLabel("Bot token").fill("xoxb-page-secret-1");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator("#sys-saved", { hasText: "Saved" }).waitFor();
  const stored = (await call("GET", "/v1/system/settings")).body;
  assert.equal(stored.enable_slack_notifications, true);
  assert.equal(stored.slack_channel, "#appsec");
  assert.equal(stored.slack_token_set, true);
  assert.equal(await page.locator("#sys-slack_token-state").textContent(), "Set. Type a new one to replace it.");
  assert.equal((await page.content()).includes("xoxb-page-secret-1"), false, "the token is nowhere on the page");
  // The matrix now has a Slack column.
  await page.getByRole("link", { name: "Notifications" }).click();
  await page.locator('input[name="scan_added.slack"]').waitFor();

  await page.getByRole("link", { name: "System settings" }).click();
  await page.getByLabel("Site URL (the links in messages)").fill("not a url");
  await page.getByRole("button", { name: "Save settings" }).click();
  const error = page.locator("#sys-error-site_url");
  await error.waitFor();
  assert.match(await error.textContent(), /^site_url/);
  assert.equal((await call("GET", "/v1/system/settings")).body.site_url, stored.site_url, "nothing saved");

  await page.getByLabel("Site URL (the links in messages)").fill(stored.site_url || "");
  await page.getByLabel("Clear the bot token").check();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator("#sys-saved", { hasText: "slack_token" }).waitFor();
  assert.equal((await call("GET", "/v1/system/settings")).body.slack_token_set, false);
  // Slack is left switched off again for the other tests.
  await page.getByLabel("Send to Slack").uncheck();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator("#sys-saved", { hasText: "enable_slack_notifications" }).waitFor();

  // What the browser cannot read as a number is refused at its field, not sent as a clear.
  const timeout = page.getByLabel("Timeout in seconds (1 to 60)");
  const storedTimeout = (await call("GET", "/v1/system/settings")).body.webhooks_notifications_timeout;
  await timeout.fill("");
  await timeout.pressSequentially("e");
  const sent = [];
  page.on("request", (r) => r.method() === "PUT" && sent.push(r.url()));
  await page.getByRole("button", { name: "Save settings" }).click();
  const timeoutError = page.locator("#sys-error-webhooks_notifications_timeout");
  await timeoutError.waitFor();
  assert.match(await timeoutError.textContent(), /must be a whole number/);
  assert.deepEqual(sent, [], "nothing was sent");
  assert.equal((await call("GET", "/v1/system/settings")).body.webhooks_notifications_timeout, storedTimeout);
  // A value stored with spaces around it is not rewritten by a save that did not touch it.
  const team = (await call("GET", "/v1/system/settings")).body.team_name;
  const spaced = await call("PUT", "/v1/system/settings", { team_name: " AppSec " });
  assert.equal(spaced.status, 200, JSON.stringify(spaced.body));
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  await page.getByLabel("Send mail").waitFor();
  await page.getByLabel("Send to Slack").check();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator("#sys-saved", { hasText: "Saved: enable_slack_notifications." }).waitFor();
  assert.equal((await call("GET", "/v1/system/settings")).body.team_name, " AppSec ");
  await page.getByLabel("Send to Slack").uncheck();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.locator("#sys-saved", { hasText: "Saved: enable_slack_notifications." }).waitFor();
  assert.equal((await call("PUT", "/v1/system/settings", { team_name: team })).status, 200);
});

test("a slow answer for a tab left behind is not drawn, so Save writes the tab on screen", async () => {
  await signIn("--user", "ada", "--admin");
  const before = (await call("GET", "/v1/users/ada/notifications")).body;
  // Personal's settings answer late; System is opened meanwhile.
  await page.route("**/v1/users/ada/notifications", async (route) => {
    if (route.request().method() !== "GET") return route.continue();
    await new Promise((resolve) => setTimeout(resolve, 800));
    return route.continue();
  });
  await page.getByRole("link", { name: "Personal", exact: true }).click();
  await page.getByRole("link", { name: "System", exact: true }).click();
  await page.locator("#matrix-caption", { hasText: "System notification settings" }).waitFor();
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  assert.equal(await page.locator("#matrix-caption").textContent(), "System notification settings");
  assert.equal(await page.locator('input[name="scan_added.msteams"]').count(), 0, "Teams is off: no column");
  await page.locator('input[name="code_review.mail"]').check();
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#saved", { hasText: "Saved." }).waitFor();
  const system = (await call("GET", "/v1/notifications/system")).body;
  assert.ok(system.events.code_review.includes("mail"), JSON.stringify(system.events.code_review));
  assert.deepEqual((await call("GET", "/v1/users/ada/notifications")).body, before, "personal untouched");
});

test("back and forward go between the views opened", async () => {
  await signIn("--user", "ada", "--admin");
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.locator("#webhook-form").waitFor();
  await page.getByRole("link", { name: "System", exact: true }).waitFor({ state: "hidden" });
  await page.goBack();
  await page.locator("#matrix-caption", { hasText: "Personal notification settings" }).waitFor();
  assert.equal(await page.locator("#webhooks").isHidden(), true);
  await page.goForward();
  await page.locator("#webhook-form").waitFor();
  assert.equal(await page.locator("#notifications").isHidden(), true);
});

test("a user has no System settings link", async () => {
  await signIn("--user", "alice");
  assert.equal(await page.getByRole("link", { name: "System settings" }).count(), 0);
});

test("a product tab per product the user may view: its settings saved, what they add shown, removed again", async () => {
  for (const [id, name] of [["web", "Web"], ["hr", "HR"]]) {
    assert.equal((await call("PUT", `/v1/product-types/${id}`, { name }, serviceToken)).status < 300, true);
  }
  for (const [id, name, type] of [["7", "Web shop", "web"], ["8", "Billing", "web"], ["9", "Payroll", "hr"]]) {
    const r = await call("PUT", `/v1/products/${id}`, { name, product_type_id: type }, serviceToken);
    assert.ok(r.status < 300, JSON.stringify(r.body));
  }
  assert.equal((await call("PUT", "/v1/products/7/members/alice", undefined, serviceToken)).status < 300, true);
  assert.equal((await call("PUT", "/v1/product-types/web/members/alice", undefined, serviceToken)).status < 300, true);
  const personal = await call("PUT", "/v1/users/alice/notifications", { events: { scan_added: ["alert"] } });
  assert.equal(personal.status, 200, JSON.stringify(personal.body));

  await signIn("--user", "alice");
  // Sorted by name; Payroll (another product type) is not hers to see.
  assert.deepEqual(await page.locator("nav#tabs a").allTextContents(), ["Personal", "Billing", "Web shop"]);
  await page.getByRole("link", { name: "Web shop" }).click();
  await page.locator("#matrix-caption", { hasText: "Web shop notification settings" }).waitFor();
  assert.match(await page.locator("#scope-help").textContent(), /you are a member of it and you are a member of its product type.*no settings of your own/);
  assert.equal(await page.locator("#product-reset").isHidden(), true);
  assert.equal(await page.locator('input[name="scan_added.mail"]').isChecked(), false);
  await page.locator('input[name="scan_added.mail"]').check();
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator("#saved", { hasText: "Saved." }).waitFor();
  const stored = await call("GET", "/v1/users/alice/notifications/products/7");
  assert.equal(stored.status, 200, JSON.stringify(stored.body));
  assert.deepEqual(stored.body.events.scan_added, ["mail"]);
  // What she gets for Web shop: the bell from her personal settings, mail from the product's.
  assert.equal(
    await page.locator('tr[data-event="scan_added"] td.effective').textContent(),
    "Alert: from your personal settings; Mail: from the product's settings",
  );
  assert.deepEqual(await page.locator("nav#tabs a").allTextContents(), ["Personal", "Billing", "Web shop •"]);
  assert.equal(await page.locator("nav#tabs").textContent(), "PersonalBillingWeb shop •", "nothing else in the tabs");
  assert.equal(await page.locator("#product-reset").isVisible(), true);
  await readmeShot("product.png");

  // A product she may not view has no tab: its address opens her personal settings, and the
  // API refuses it.
  await page.goto(`${base}/#product-9`);
  await page.waitForSelector("body[data-ready=true]");
  await page.locator("#matrix-caption", { hasText: "Personal notification settings" }).waitFor();
  const refused = await call("GET", "/v1/users/alice/notifications/products/9", undefined, cli("token", "--sub", "alice", "--role", "user"));
  assert.equal(refused.status, 403);

  // Opened by its address, then its settings removed: her personal settings apply again.
  await page.goto(`${base}/#product-7`);
  await page.waitForSelector("body[data-ready=true]");
  await page.locator("#matrix-caption", { hasText: "Web shop notification settings" }).waitFor();
  assert.equal(await page.locator('input[name="scan_added.mail"]').isChecked(), true);
  await page.getByRole("button", { name: "Remove this product's settings" }).click();
  await page.locator("#saved", { hasText: "Removed" }).waitFor();
  assert.equal((await call("GET", "/v1/users/alice/notifications/products/7")).status, 404);
  assert.equal(await page.locator('tr[data-event="scan_added"] td.effective').textContent(), "Alert: from your personal settings");
  assert.equal(await page.locator('input[name="scan_added.mail"]').isChecked(), false);

  // Past eight products a list picks the others; the one picked gets its tab.
  for (let i = 10; i < 20; i++) {
    const r = await call("PUT", `/v1/products/${i}`, { name: `Service ${i}`, product_type_id: "web" }, serviceToken);
    assert.ok(r.status < 300, JSON.stringify(r.body));
  }
  await signIn("--user", "alice");
  assert.deepEqual(await page.locator("nav#tabs a").allTextContents(), ["Personal"]);
  const picker = page.getByLabel("Other product");
  assert.equal(await picker.locator("option").count(), 13, "a prompt and twelve products");
  await picker.selectOption({ label: "Service 12" });
  await page.locator("#matrix-caption", { hasText: "Service 12 notification settings" }).waitFor();
  assert.deepEqual(await page.locator("nav#tabs a").allTextContents(), ["Personal", "Service 12"]);
  assert.equal(new URL(page.url()).hash, "#product-12");
});

/** axe-core's serious and critical violations on the page as it is now. */
async function seriousViolations() {
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}

test("axe-core finds no serious violation on the matrix, the alerts, the webhooks, the system settings or the sign-in help", async () => {
  // axe is injected as a script of its own, which the page's policy would refuse.
  await signIn("--user", "ada", "--admin", { bypassCSP: true });
  assert.deepEqual(await seriousViolations(), []);
  await page.locator("[data-unread-count]").click();
  await page.locator("#alerts").waitFor();
  assert.deepEqual(await seriousViolations(), []);
  await page.getByRole("button", { name: "Close" }).click();
  await page.getByRole("link", { name: "Webhooks" }).click();
  await page.locator("#webhook-form").waitFor();
  assert.deepEqual(await seriousViolations(), []);
  await page.getByRole("link", { name: "System settings" }).click();
  await page.locator("#system-fields fieldset").first().waitFor();
  assert.deepEqual(await seriousViolations(), []);
  await page.evaluate(() => sessionStorage.clear());
  await page.goto(`${base}/`);
  await page.locator("#signed-out").waitFor();
  assert.deepEqual(await seriousViolations(), []);
});
