// The API reference page in a real browser: headless Chromium (Debian's, no download) opens
// /docs from `wrangler dev`, offline, and must render every surface's operations.
//   npm run test:browser          (needs /usr/bin/chromium: apt-get install -y chromium)
import { mkdirSync } from "node:fs";
import { launchChromium } from "./browser.mjs";
import { startDevServer } from "./dev-server.mjs";

const SCREENSHOT = "test-artifacts/docs.png";
const SCREENSHOT_SEED000 = "test-artifacts/docs-organization-keys.png";

// Operation summaries of every surface (seed 000, 001, 002 and Keygate's own), and paths.
const EXPECTED_TEXTS = [
  "Keygate API",
  "List API keys",
  "Create an API key",
  "Rotate an API key with optional grace period",
  "Revoke an API key",
  "Get an API key",
  "Update an API key",
  "List API keys for a project",
  "List the organization's API keys",
  "Verify an API key",
  "Create a project",
  "The organization's audit log",
  "Rotate the webhook signing secret (org admins)",
  "List webhook deliveries",
  "/v1/organizations/{orgID}/api-keys",
  "/v1/organizations/{orgID}/api-keys/{keyID}",
  "/api/v1/projects/{projectId}/keys",
  "/v1/api-keys/{keyID}/rotate",
];

const log = (...args) => console.log("[browser-check]", ...args);

const server = await startDevServer();
let browser;
let failed = false;
try {
  log(`wrangler dev on ${server.url}`);
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  // Offline: anything that is not this Worker is refused, and remembered.
  const external = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(server.url) || url.startsWith("data:") || url.startsWith("blob:")) {
      return route.continue();
    }
    external.push(url);
    return route.abort("internetdisconnected");
  });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") pageErrors.push(`console: ${message.text()}`);
  });

  const response = await page.goto(`${server.url}/docs`, { waitUntil: "networkidle" });
  if (response?.status() !== 200) throw new Error(`/docs answered ${response?.status()}`);
  // Scalar renders client-side: wait for the first operation, then for the rest.
  await page.getByText("Rotate an API key with optional grace period").first().waitFor({
    timeout: 30_000,
  });

  // innerText on purpose: the text a reader sees, not that of hidden nodes.
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text is the point
  const text = await page.evaluate(() => document.body.innerText);
  const missing = EXPECTED_TEXTS.filter((expected) => !text.includes(expected));
  mkdirSync("test-artifacts", { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: false });
  // And seed 000's section, further down the page.
  await page.getByText("/v1/organizations/{orgID}/api-keys").first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: SCREENSHOT_SEED000, fullPage: false });
  log(`screenshots: ${SCREENSHOT}, ${SCREENSHOT_SEED000}`);

  if (missing.length > 0) {
    failed = true;
    log(`missing on the page: ${missing.map((m) => JSON.stringify(m)).join(", ")}`);
  }
  if (external.length > 0) {
    failed = true;
    log(`the page tried to reach the network: ${[...new Set(external)].join(", ")}`);
  }
  if (pageErrors.length > 0) {
    // Reported, not fatal: the assertions above are what the page must do.
    log(`page errors:\n  ${pageErrors.join("\n  ")}`);
  }
  if (!failed) log(`ok: ${EXPECTED_TEXTS.length} texts rendered, no network access`);
} catch (error) {
  failed = true;
  log("failed:", error);
} finally {
  await browser?.close();
  await server.stop();
}
process.exit(failed ? 1 : 0);
