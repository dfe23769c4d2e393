// The dashboard in a real browser: headless Chromium (Debian's, no download) signs in to a
// throwaway `wrangler dev`, creates a project and a key, verifies the key over HTTP, sees it
// used, rotates it, revokes it and finds each step in the audit log. Screenshots of every page
// at 1280 and 390 px go to test-artifacts/dashboard/. Any console error, page error, failed
// request or request off this machine fails the journey.
//   npm run test:dashboard          (needs /usr/bin/chromium: apt-get install -y chromium)
import { mkdirSync, rmSync } from "node:fs";
import { launchChromium } from "./browser.mjs";
import { startDevServer } from "./dev-server.mjs";

const OUT = "test-artifacts/dashboard";
const WIDTHS = [1280, 390];

const log = (...args) => console.log("[dashboard-journey]", ...args);

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const server = await startDevServer();
let browser;
let failed = false;
const problems = [];
try {
  log(`wrangler dev on ${server.url}`);
  // This run's screenshots only.
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(server.url) || url.startsWith("data:")) return route.continue();
    problems.push(`request off this machine: ${url}`);
    return route.abort("internetdisconnected");
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => problems.push(`page error: ${error}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("requestfailed", (request) =>
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
  );
  page.on("response", (response) => {
    const status = response.status();
    if (status < 400) return;
    problems.push(`${status} from ${response.request().method()} ${response.url()}`);
  });

  let shot = 0;
  const screenshot = async (name) => {
    shot += 1;
    const base = `${OUT}/${String(shot).padStart(2, "0")}-${name}`;
    for (const width of WIDTHS) {
      await page.setViewportSize({ width, height: width > 600 ? 900 : 844 });
      await page.screenshot({ path: `${base}-${width}.png`, fullPage: true });
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  };
  const text = () => page.locator("main").textContent();
  const submit = async (label) => {
    const [response] = await Promise.all([
      page.waitForNavigation(),
      page.getByRole("button", { name: label }).click(),
    ]);
    return response;
  };
  const verify = async (key) => {
    const response = await fetch(`${server.url}/v1/keys/verify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key }),
    });
    return (await response.json()).code;
  };

  // Sign in: the dashboard sends a signed-out visitor to sign-in, which offers dev sign-in.
  await page.goto(`${server.url}/dashboard`);
  check(page.url().includes("/dashboard/sign-in"), `not sent to sign-in: ${page.url()}`);
  await screenshot("sign-in");
  await page.getByRole("link", { name: "Local development sign-in" }).click();
  await page.getByLabel("Organization ID").fill("org_journey");
  await page.getByLabel("User ID").fill("user_journey");
  await screenshot("dev-sign-in");
  await submit("Sign in");
  check(page.url().endsWith("/dashboard/projects"), `sign-in landed on ${page.url()}`);
  const cookie = (await context.cookies()).find((c) => c.name === "__session");
  check(cookie?.httpOnly && cookie.sameSite === "Lax", "session cookie not HttpOnly + Lax");
  await screenshot("projects-empty");

  // A project: a form error first (the field says what is wrong), then the real one.
  await page.getByLabel("Key prefix").fill("Not A Slug");
  await page.getByLabel("Project name").fill("Billing API");
  await submit("Create project");
  check((await text()).includes("lowercase letters"), "no error next to the key prefix");
  await screenshot("project-form-error");
  await page.getByLabel("Key prefix").fill("");
  await submit("Create project");
  check((await text()).includes("Project created."), "project not created");
  const projectUrl = page.url().split("?")[0];
  await screenshot("project-empty");

  // A key: its plaintext is on the page that answered the POST, and only there.
  await page.getByRole("link", { name: "New key" }).click();
  await page.getByLabel("Name").fill("Checkout service");
  await page.getByLabel("Scopes").fill("orders:read orders:write");
  await screenshot("key-new");
  const created = await submit("Create key");
  check(created?.headers()["cache-control"]?.includes("no-store"), "key page is cacheable");
  check(!created.url().includes("capy_"), "the key is in the URL");
  const plaintext = (await page.locator("#new-key").textContent()).trim();
  check(/^capy_live_/.test(plaintext), `no plaintext key on the page: ${plaintext}`);
  check(await page.getByRole("button", { name: "Copy" }).isVisible(), "no copy button");
  await screenshot("key-created");
  log(`created ${plaintext.slice(0, 14)}…`);

  // A reload of that page posts the form again: it goes to the key it created, once, and
  // shows no secret.
  await page.reload();
  check(page.url().endsWith("?notice=key-created-before"), `reload landed on ${page.url()}`);
  check((await text()).includes("That form was submitted before"), "no notice after reload");
  check((await page.locator("#new-key").count()) === 0, "the reload shows a secret");
  await screenshot("key-created-reloaded");
  await page.goto(projectUrl);
  check(
    (await page.getByRole("link", { name: "Checkout service" }).count()) === 1,
    "the reload created a second key",
  );

  // Used over HTTP: the key page shows it (last-used stamps may follow the answer).
  check((await verify(plaintext)) === "VALID", "new key does not verify");
  await page.getByRole("link", { name: "Checkout service" }).click();
  const keyUrl = page.url();
  let lastUsed = "";
  for (let i = 0; i < 40; i++) {
    lastUsed = await page.locator("dt:text-is('Last used') + dd").textContent();
    if (!lastUsed.includes("Never")) break;
    await new Promise((r) => setTimeout(r, 1500));
    await page.reload();
  }
  check(!lastUsed.includes("Never"), "last used still says Never");
  // The chart moved: the verification is counted (the queue delivers it within seconds).
  for (let i = 0; i < 40 && (await page.getByTestId("verification-total").count()) === 0; i++) {
    await new Promise((r) => setTimeout(r, 1500));
    await page.reload();
  }
  check(
    (await page.getByTestId("verification-total").textContent()) === "1",
    "the chart does not show the verification",
  );
  await page.locator(".chart canvas").first().waitFor();
  await screenshot("key-detail");

  // Edit: a refused webhook URL is named next to its field; a good change is saved.
  await page.getByLabel("Rotation webhook URL").fill("http://example.com/hook");
  await submit("Save changes");
  check((await text()).includes("https:// URL"), "no error next to the webhook URL");
  await screenshot("key-edit-error");
  // A receiver that is not there (port 9, discard): its deliveries stay pending, retryable.
  await page.getByLabel("Rotation webhook URL").fill("http://127.0.0.1:9/keygate-hook");
  await page.getByLabel("Scopes").fill("orders:read orders:write refunds:write");
  await submit("Save changes");
  check((await text()).includes("Changes saved."), "edit not saved");

  // Access: disabled answers DISABLED; enabled again with a rate limit and credits.
  await page.getByLabel("Enabled").uncheck();
  await submit("Save access");
  check((await text()).includes("Access settings saved."), "access not saved");
  check((await verify(plaintext)) === "DISABLED", "a disabled key still verifies");
  await page.getByLabel("Enabled").check();
  await page.locator("#rl_name_0").fill("requests");
  await page.locator("#rl_limit_0").fill("600");
  await page.locator("#rl_window_0").selectOption("60");
  await page.getByLabel("Remaining").fill("10000");
  await page.getByLabel("Refill", { exact: true }).selectOption("monthly");
  await page.getByLabel("Refill to").fill("10000");
  await submit("Save access");
  check((await text()).includes("600 per minute"), "rate limit not shown");
  check((await verify(plaintext)) === "VALID", "an enabled key does not verify");
  await screenshot("key-access");

  await page.goto(projectUrl);
  check((await text()).includes("Checkout service"), "key not listed in its project");
  await screenshot("project-keys");

  // Rotate with a grace period: a new key, once; the old one keeps working meanwhile.
  await page.goto(keyUrl);
  await page.getByRole("link", { name: "Rotate…" }).click();
  await page.getByLabel(/1 hour/).check();
  await screenshot("key-rotate");
  const rotated = await submit("Rotate key");
  check(rotated?.headers()["cache-control"]?.includes("no-store"), "rotation page is cacheable");
  const fresh = (await page.locator("#new-key").textContent()).trim();
  check(fresh !== plaintext && /^capy_live_/.test(fresh), "no new key on the rotation page");
  check((await verify(fresh)) === "VALID", "rotated key does not verify");
  check((await verify(plaintext)) === "VALID", "old key stopped before its grace ended");
  await screenshot("key-rotated");

  // Revoke the new key, after a confirmation page.
  await page.getByRole("link", { name: /go to the key/ }).click();
  await page.getByRole("link", { name: "Revoke…" }).click();
  await screenshot("key-revoke-confirm");
  await submit(/^Revoke /);
  check((await text()).includes("Key revoked"), "no revocation notice");
  check((await verify(fresh)) === "REVOKED", "revoked key still verifies");
  await screenshot("key-revoked");

  // The old key (in its grace) reported leaked, as anyone may: the project's default policy
  // revokes it; its page says so.
  await page.waitForLoadState("networkidle");
  const reported = await fetch(`${server.url}/v1/leaks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ keys: [plaintext], url: "https://example.com/paste" }),
  });
  check(reported.status === 202, `leak report answered ${reported.status}`);
  check((await verify(plaintext)) === "REVOKED", "a leaked key still verifies");
  await page.goto(keyUrl);
  check((await text()).includes("This key was reported leaked."), "no leak banner");
  await screenshot("key-leaked");

  // The rotation's webhook delivery, retried by hand.
  await page.goto(`${projectUrl}/webhooks`);
  check((await text()).includes("api_key.rotated"), "no delivery for the rotation");
  await screenshot("webhooks");
  await submit("Retry now");
  check((await text()).includes("Delivery queued again"), "retry not confirmed");

  // A webhook endpoint for key events: added from the tab's form, then disabled.
  await page.getByLabel("URL").fill("http://localhost:9/keygate-events");
  await page.getByLabel("Description").fill("Billing sync");
  await page.getByLabel("api_key.revoked").check();
  await page.getByLabel("api_key.leaked").check();
  await submit("Add endpoint");
  check((await text()).includes("Webhook endpoint added"), "endpoint not added");
  check((await text()).includes("api_key.leaked"), "endpoint's events not listed");
  await screenshot("webhook-endpoints");
  await submit("Disable");
  check((await text()).includes("disabled"), "endpoint not disabled");
  await page.getByRole("link", { name: "Billing sync" }).click();
  await screenshot("webhook-endpoint-edit");
  await page.goto(`${server.url}/dashboard/org-keys`);
  await screenshot("org-keys");

  // Identities: one is created with limits and credits (a bad metadata first), a key of the
  // project is given its external id over the API and verified, and the identity's page shows
  // the key, its chart and its live balance.
  const api = async (method, path, body) => {
    const session = (await context.cookies()).find((c) => c.name === "__session")?.value;
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${session}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.text();
    check(response.ok, `${method} ${path}: ${response.status} ${answer}`);
    return JSON.parse(answer);
  };
  await page.goto(`${server.url}/dashboard/identities`);
  check((await text()).includes("No identities yet"), "the identities list is not empty");
  await screenshot("identities-empty");
  await page.getByRole("link", { name: "New identity" }).click();
  await page.getByLabel("External id").fill("cust_acme");
  await page.getByLabel("Metadata").fill("{plan: pro}");
  await page.locator("#rl_name_0").fill("requests");
  await page.locator("#rl_limit_0").fill("1000");
  await page.getByLabel("Remaining").fill("5000");
  await page.getByLabel("Refill", { exact: true }).selectOption("monthly");
  await page.getByLabel("Refill to").fill("5000");
  await submit("Create identity");
  check((await text()).includes("Enter a JSON object"), "no error next to the metadata");
  await screenshot("identity-form-error");
  await page.getByLabel("Metadata").fill('{"plan": "pro"}');
  await submit("Create identity");
  check((await text()).includes("Identity created."), "identity not created");
  const identityUrl = page.url().split("?")[0];
  const owned = await api("POST", "/v1/api-keys", {
    project_id: projectUrl.split("/").pop(),
    name: "Acme backend",
    scopes: ["orders:read"],
    external_id: "cust_acme",
  });
  for (let i = 0; i < 3; i++) {
    check((await verify(owned.key)) === "VALID", "the identity's key does not verify");
  }
  await page.goto(identityUrl);
  for (let i = 0; i < 40 && (await page.getByTestId("verification-total").count()) === 0; i++) {
    await new Promise((r) => setTimeout(r, 1500));
    await page.reload();
  }
  check(
    (await page.getByTestId("verification-total").textContent()) === "3",
    "the identity's chart does not show its key's verifications",
  );
  check(
    (await page.getByRole("link", { name: "Acme backend" }).count()) >= 1,
    "the identity's key is not listed",
  );
  await page.locator(".chart canvas").first().waitFor();
  await screenshot("identity-detail");
  await page.getByLabel("Remaining").fill("7500");
  await submit("Save limits and credits");
  check((await text()).includes("Limits and credits saved."), "identity limits not saved");
  check((await text()).includes("7,500 remaining"), "the new balance is not shown");
  const old = await api("POST", "/v1/identities", { external_id: "cust_former" });
  await page.goto(`${server.url}/dashboard/identities`);
  check((await text()).includes("cust_former"), "the second identity is not listed");
  await screenshot("identities");
  await page.goto(`${server.url}/dashboard/identities/${old.id}`);
  await page.getByRole("link", { name: "Delete…" }).click();
  await screenshot("identity-delete-confirm");
  await submit("Delete identity");
  check((await text()).includes("Identity deleted."), "no deletion notice");
  check(!(await text()).includes("cust_former"), "the deleted identity is still listed");

  // The audit log has every step.
  await page.goto(`${server.url}/dashboard/audit`);
  const audit = await text();
  for (const step of [
    "Created project",
    "Created key",
    "Changed key",
    "Rotated key",
    "Revoked key",
    "Created identity",
    "Deleted identity",
    "Added webhook endpoint",
  ]) {
    check(audit.includes(step), `audit log lacks "${step}"`);
  }
  await screenshot("audit");

  // Sign out ends the session.
  await submit("Sign out");
  check(page.url().includes("/dashboard/sign-in"), "sign-out did not return to sign-in");
  check(!(await context.cookies()).some((c) => c.name === "__session"), "cookie survived");

  // A member of the same organization: projects and keys, no organization keys.
  await page.goto(`${server.url}/dashboard/dev-sign-in`);
  await page.getByLabel("Organization ID").fill("org_journey");
  await page.getByLabel("User ID").fill("user_member");
  await page.getByLabel(/^Member/).check();
  await submit("Sign in");
  check((await page.locator("header").textContent()).includes("Member"), "not signed in as member");
  check(
    (await page.getByRole("link", { name: "Organization keys" }).count()) === 0,
    "a member sees the organization keys link",
  );
  await screenshot("member-projects");
  await page.goto(identityUrl);
  check(
    (await text()).includes("Only organization admins can change identities."),
    "a member is offered the identity's form",
  );
  await screenshot("member-identity");

  if (problems.length > 0) {
    failed = true;
    log(`problems:\n  ${problems.join("\n  ")}`);
  } else {
    log(`ok: ${shot} pages, ${shot * WIDTHS.length} screenshots in ${OUT}/`);
  }
} catch (error) {
  failed = true;
  log("failed:", error);
  if (problems.length > 0) log(`problems:\n  ${problems.join("\n  ")}`);
} finally {
  await browser?.close();
  await server.stop();
}
process.exit(failed ? 1 : 0);
