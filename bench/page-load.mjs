// The page's weight and time to interactive: herald-local on loopback, Debian's Chromium,
// the matrix page opened by a sign-in link LOADS times in fresh tabs (no cache). Prints the
// bytes transferred (the page, its files and its API calls) and the median and worst time
// from navigation to the matrix being ready to use (`body[data-ready]`: catalogue, settings,
// effective view and unread count loaded and the matrix drawn).
//
//   bench/page-load.sh           # builds herald-local (local profile) first
//
// Targets: ≤ 100 KB transferred, interactive in ≤ 150 ms.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(ROOT, "tests/browser/package.json"));
const { chromium } = require("playwright-core");
const BIN = process.env.HERALD_LOCAL_BIN || path.join(ROOT, "target/local/herald-local");
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";
const LOADS = Number(process.env.LOADS || 30);

const dataDir = mkdtempSync(path.join(tmpdir(), "herald-page-bench-"));
const env = { ...process.env, SLACK_API_URL: "http://127.0.0.1:9/api" };
delete env.HERALD_JWT_SECRET;
const cli = (...args) => execFileSync(BIN, [...args, "--data-dir", dataDir], { env, encoding: "utf8" }).trim();
const server = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--check-interval", "0"], {
  env,
  stdio: "ignore",
});
let base;
for (let i = 0; i < 600 && !base; i++) {
  const file = path.join(dataDir, "server-address");
  if (existsSync(file)) {
    const address = readFileSync(file, "utf8").trim();
    if (await fetch(`${address}/health`).then((r) => r.ok, () => false)) base = address;
  }
  if (!base) await new Promise((r) => setTimeout(r, 100));
}
if (!base) throw new Error("herald-local did not start");

const service = cli("token", "--sub", "platform", "--role", "service");
const admin = cli("token", "--sub", "root", "--role", "admin");
const put = (p, body, token) =>
  fetch(`${base}${p}`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
await put("/v1/users/alice", { email: "alice@example.com" }, service);
await put("/v1/system/settings", { enable_mail_notifications: true, enable_slack_notifications: true }, admin);

const browser = await chromium.launch({
  executablePath: BROWSER,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const times = [];
let bytes = 0;
let requests = 0;
try {
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    let transferred = 0;
    let count = 0;
    const pending = [];
    page.on("response", (response) => {
      // The live bell's stream stays open: what it sends is not part of loading the page.
      if (response.url().endsWith("/alerts/stream")) return;
      pending.push(
        (async () => {
          await response.finished();
          const sizes = await response.request().sizes();
          transferred += sizes.responseBodySize + sizes.responseHeadersSize;
          count += 1;
        })().catch(() => {}),
      );
    });
    // The icon is asked for last, sometimes after the load event: wait for it too.
    const icon = page.waitForResponse((r) => r.url().endsWith("/ui/icon.svg"));
    await page.goto(cli("login", "--user", "alice"));
    const ready = await page.waitForFunction(
      () => document.body.dataset.ready === "true" && performance.now(),
      null,
      { polling: "raf" },
    );
    times.push(await ready.jsonValue());
    await page.waitForLoadState("load");
    await icon;
    await Promise.all(pending);
    if (i === LOADS - 1) {
      bytes = transferred;
      requests = count;
    }
    await context.close();
  }
} finally {
  await browser.close();
  server.kill("SIGTERM");
  rmSync(dataDir, { recursive: true, force: true });
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`page: ${requests} responses, ${(bytes / 1024).toFixed(1)} KB transferred (bodies and headers, uncompressed; the live stream left out)`);
console.log(`page: interactive after ${median.toFixed(0)} ms median, ${times.at(-1).toFixed(0)} ms worst, over ${LOADS} loads`);
