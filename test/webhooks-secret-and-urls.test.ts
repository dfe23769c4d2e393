import { describe, expect, it, vi } from "vitest";
import { call, newKey, newOrg, runCron, sessionToken } from "./helpers";
import {
  DAY,
  expectedSignature,
  hookUrl,
  type Json,
  MINUTE,
  ok,
  receivers,
  SECOND,
  signatures,
  standardVerify,
} from "./webhooks-harness";

describe("webhook signing secret", () => {
  it("is readable and rotatable by org admins only", async () => {
    const { admin, member, project } = await newOrg("secret-acl");
    const path = `/v1/projects/${project.id}/webhook-secret`;

    expect((await call("GET", path, { token: member })).status).toBe(403);
    expect((await call("POST", path, { token: member })).status).toBe(403);
    const stranger = await newOrg("secret-stranger");
    expect((await call("POST", path, { token: stranger.admin })).status).toBe(404);
    expect((await call("GET", path, { token: stranger.admin })).status).toBe(404);

    const read = await call("GET", path, { token: admin });
    expect(read.status).toBe(200);
    expect(read.body).toEqual({
      webhook_signing_secret: project.webhook_signing_secret,
      previous_webhook_signing_secret: null,
      previous_secret_expires_at: null,
    });
  });

  it("signs with both the new and the old secret for 24 h after a rotation", async () => {
    const { admin, project } = await newOrg("secret-rotation");
    const oldSecret = project.webhook_signing_secret;
    const before = Date.now();
    const rotatedSecret = await call("POST", `/v1/projects/${project.id}/webhook-secret`, {
      token: admin,
    });
    expect(rotatedSecret.status).toBe(200);
    const newSecret = rotatedSecret.body.webhook_signing_secret;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(oldSecret);
    expect(rotatedSecret.body.previous_webhook_signing_secret).toBe(oldSecret);
    const previousUntil = Date.parse(rotatedSecret.body.previous_secret_expires_at);
    expect(previousUntil).toBeGreaterThanOrEqual(before + DAY);
    expect(previousUntil).toBeLessThanOrEqual(Date.now() + DAY);
    const read = await call("GET", `/v1/projects/${project.id}/webhook-secret`, { token: admin });
    expect(read.body).toEqual(rotatedSecret.body);

    const url = hookUrl("two-secrets");
    const key = await newKey(admin, project.id, { rotation_webhook_url: url });
    const first = await call("POST", `/v1/api-keys/${key.id}/rotate`, { token: admin, body: {} });
    const hooks = receivers({ [url]: ok });
    await runCron(Date.now());

    const [both] = hooks.to(url);
    if (!both) throw new Error("no delivery");
    expect(signatures(both)).toHaveLength(2);
    expect(new Set(signatures(both))).toEqual(
      new Set([await expectedSignature(newSecret, both), await expectedSignature(oldSecret, both)]),
    );
    expect(standardVerify(newSecret, both)).toEqual(JSON.parse(both.body));
    expect(standardVerify(oldSecret, both)).toEqual(JSON.parse(both.body));

    // A day later the old secret is no longer used.
    const second = await call("POST", `/v1/api-keys/${first.body.new_key_id}/rotate`, {
      token: admin,
      body: {},
    });
    expect(second.status).toBe(201);
    await runCron(previousUntil + MINUTE);
    const [, one] = hooks.to(url);
    if (!one) throw new Error("no second delivery");
    expect(signatures(one)).toEqual([await expectedSignature(newSecret, one)]);
    standardVerify(newSecret, one);
    expect(() => standardVerify(oldSecret, one)).toThrow();
  });
});

describe("webhook signing secret history", () => {
  it("refuses a second rotation (409) while the previous secret is in its 24 h, then allows it", async () => {
    const { org, admin, project } = await newOrg("secret-history");
    const path = `/v1/projects/${project.id}/webhook-secret`;
    const first = await call("POST", path, { token: admin });
    expect(first.status).toBe(200);

    const again = await call("POST", path, { token: admin });
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toContain("application/problem+json");
    expect(again.body.detail).toContain(first.body.previous_secret_expires_at);
    // Nothing changed: the original secret still signs beside the new one.
    const read = await call("GET", path, { token: admin });
    expect(read.body).toEqual(first.body);
    expect(read.body.previous_webhook_signing_secret).toBe(project.webhook_signing_secret);

    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse(first.body.previous_secret_expires_at) + SECOND);
    const later = await call("POST", path, { token: await sessionToken({ org, role: "admin" }) });
    expect(later.status).toBe(200);
    expect(later.body.previous_webhook_signing_secret).toBe(first.body.webhook_signing_secret);
  });
});

describe("rotation_webhook_url", () => {
  const rejected = ["http://example.com/hook", "ftp://example.com/hook", "not a url"];
  const accepted = [
    "http://localhost:3000/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::1]:9000/hook",
    "https://example.com/hooks/keygate",
  ];

  it("must be https, or http to a loopback host, when a key is created", async () => {
    const { admin, project } = await newOrg("url-create");
    for (const url of rejected) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(400);
      expect(created.headers.get("content-type")).toContain("application/problem+json");
      expect(created.body.errors.map((e: Json) => e.location)).toContain(
        "body.rotation_webhook_url",
      );
    }
    for (const url of accepted) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(201);
      expect(created.body.rotation_webhook_url).toBe(url);
    }
  });

  it("must be https, or http to a loopback host, when a key is changed", async () => {
    const { admin, project } = await newOrg("url-patch");
    const key = await newKey(admin, project.id);
    const patch = (url: string | null) =>
      call("PATCH", `/v1/api-keys/${key.id}`, {
        token: admin,
        body: { rotation_webhook_url: url },
      });
    for (const url of rejected) {
      const patched = await patch(url);
      expect(patched.status, url).toBe(400);
      expect(patched.body.errors.map((e: Json) => e.location)).toContain(
        "body.rotation_webhook_url",
      );
    }
    for (const url of accepted) {
      const patched = await patch(url);
      expect(patched.status, url).toBe(200);
      expect(patched.body.rotation_webhook_url).toBe(url);
    }
    expect((await patch(null)).body.rotation_webhook_url).toBeNull();
  });
});

describe("rotation_webhook_url: no private or special addresses, in any spelling", () => {
  const refused = [
    // private, loopback (other than the three loopback hosts), link-local, unspecified
    "https://10.0.0.1/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://127.0.0.2/hook",
    "https://0.0.0.0/hook",
    "https://255.255.255.255/hook",
    "https://224.0.0.1/hook",
    // the same addresses in other IPv4 spellings
    "https://167772161/hook", // 10.0.0.1 as one decimal number
    "https://0xa000001/hook",
    "https://0x0a.0.0.1/hook",
    "https://012.0.0.1/hook", // octal 10
    "https://0251.0376.0251.0376/", // 169.254.169.254 in octal
    "https://10.1/hook",
    "https://10.0.0.1./hook",
    "https://%31%30.0.0.1/hook",
    "https://0/hook",
    // IPv6: unspecified, link-local, unique-local, site-local, multicast, mapped, NAT64
    "https://[::]/hook",
    "https://[0:0:0:0:0:0:0:0]/hook",
    "https://[fe80::1]/hook",
    "https://[FE80:0000::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd12:3456:789a::1]/hook",
    "https://[fec0::1]/hook",
    "https://[ff02::1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[::ffff:a00:1]/hook",
    "https://[::ffff:8.8.8.8]/hook",
    "https://[0:0:0:0:0:ffff:7f00:1]/hook",
    "https://[::127.0.0.1]/hook",
    "https://[::2]/hook",
    "https://[64:ff9b::a00:1]/hook",
    "https://[2002:a00:1::]/hook",
    "https://[0::1]:8443/hook", // loopback, but only the spellings localhost, 127.0.0.1, [::1]
    "https://0x7f.1/hook",
    "https://2130706433/hook",
    "http://0x7f000001/hook",
    "https://[0:0:0:0:0:0:0:1]/hook",
    // user info, ports off loopback, other schemes
    "https://user:pass@example.com/hook",
    "https://user@example.com/hook",
    "https://example.com:8443/hook",
    "http://example.com/hook",
    "HTTPS://example.com/hook",
    "http://localhost.example.com/hook",
    "http://127.0.0.1.nip.io/hook",
    "ftp://example.com/hook",
    "javascript:alert(1)",
    // names that only resolve inside, control characters, Teredo (2001::/32)
    "https://localhost./hook",
    "https://api.localhost/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://internal./hook",
    "https://exa\tmple.com/hook",
    "https://example.com/ho\nok",
    "https://example.com\u0001/hook",
    "https://[2001::1]/hook",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
  ];
  const allowed = [
    "https://example.com/hook",
    "https://example.com",
    "https://example.com?x=1",
    "https://8.8.8.8/hook",
    "https://[2606:4700:4700::1111]/hook",
    "http://localhost/hook",
    "http://localhost:3000/hook",
    "https://localhost:8443/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::1]:9000/hook",
  ];

  it("refuses each refused spelling with one 400 naming the field, and accepts the others", async () => {
    const { admin, project } = await newOrg("url-ssrf");
    for (const url of refused) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(400);
      expect(created.body.errors, url).toEqual([
        { location: "body.rotation_webhook_url", message: expect.any(String), value: url },
      ]);
    }
    for (const url of allowed) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(201);
    }
  });

  it("accepts an explicit default port as the same URL, and keeps it without the port", async () => {
    const { admin, project } = await newOrg("url-port");
    const created = await call("POST", "/v1/api-keys", {
      token: admin,
      body: {
        project_id: project.id,
        name: "k",
        rotation_webhook_url: "https://example.com:443/hook",
      },
    });
    expect(created.status).toBe(201);
    expect(created.body.rotation_webhook_url).toBe("https://example.com/hook");
    const patched = await call("PATCH", `/v1/api-keys/${created.body.id}`, {
      token: admin,
      body: { rotation_webhook_url: "https://[2606:4700:4700::1111]:443" },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.rotation_webhook_url).toBe("https://[2606:4700:4700::1111]");
  });

  it("states the rule in the OpenAPI document: format uri, a pattern and a description", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const schemas = JSON.stringify(doc);
    expect(schemas).toContain('"format":"uri"');
    const create = doc.paths["/v1/api-keys"].post.requestBody.content["application/json"].schema;
    const properties =
      create.properties ?? doc.components.schemas[create.$ref.split("/").pop()].properties;
    const field = properties.rotation_webhook_url;
    const url = field.anyOf ? field.anyOf.find((s: Json) => s.type === "string") : field;
    expect(url).toMatchObject({ format: "uri", maxLength: 2048 });
    expect(url.description).toMatch(/private/);
    const pattern = new RegExp(url.pattern);
    for (const ok of allowed) expect(pattern.test(ok), ok).toBe(true);
    for (const shape of ["https://user@example.com/", "https://example.com:8443/", "HTTPS://a/"]) {
      expect(pattern.test(shape), shape).toBe(false);
    }
  });
});
