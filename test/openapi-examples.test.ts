// Issue 20 point 9: every try-it snippet on /docs works. /docs (Scalar) builds a request body
// from the operation's media-type `example` when there is one, else from the schema with its
// own generator (`example` on each property, else `default`, `enum[0]`, … and "" for a bare
// string). This test builds every body with that same generator, fills path parameters and
// the ids a reader would paste (project, environment, organization, key) with real ones, sends
// it as the organization's admin and expects a success: never a 400, never a 5xx.
import { getParameterExample } from "@scalar/workspace-store/helpers/get-parameter-example";
import { getExampleFromSchema, isParamDisabled } from "@scalar/workspace-store/request-example";
import { beforeAll, describe, expect, it } from "vitest";
import type { Json } from "./hardening";
import { call, newOrg } from "./helpers";
import { gitHubReport, gitHubSigner } from "./leaks-harness";

let doc: Json;
let org: Awaited<ReturnType<typeof newOrg>>;

beforeAll(async () => {
  doc = (await call("GET", "/openapi.json")).body;
  org = await newOrg("examples");
});

/** The document with every `$ref` replaced by its target, as Scalar hands schemas over. */
function deref(node: Json): Json {
  if (Array.isArray(node)) return node.map(deref);
  if (node === null || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {
    const target = node.$ref
      .replace(/^#\//, "")
      .split("/")
      .reduce((at: Json, part: string) => at[part], doc);
    return deref(target);
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, deref(v)]));
}

/** The body /docs shows for an operation: its media-type example, else the generated one. */
function docsBody(operation: Json): Json {
  const media = operation.requestBody?.content?.["application/json"];
  if (!media) return undefined;
  if (media.example !== undefined) return media.example;
  return getExampleFromSchema(
    deref(media.schema),
    { mode: "write" },
    {
      schemaPath: ["requestBody"],
    },
  );
}

const operations = (): { method: string; path: string; operation: Json }[] =>
  Object.entries<Json>(doc.paths).flatMap(([path, item]) =>
    Object.entries<Json>(item).map(([method, operation]) => ({ method, path, operation })),
  );

/** Strings the generator leaves empty: a member with no `example` a reader must fill in. */
function emptyStrings(value: Json, at = "body"): string[] {
  if (value === "") return [at];
  if (Array.isArray(value)) return value.flatMap((item, i) => emptyStrings(item, `${at}[${i}]`));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => emptyStrings(v, `${at}.${k}`));
  }
  return [];
}

/** The GitHub door's example body, signed by a local key in GitHub's document shape. */
async function signedGitHubExample(body: unknown): Promise<number> {
  const signer = await gitHubSigner("docs-example");
  return (await gitHubReport(signer, JSON.stringify(body))).status;
}

describe("the try-it examples of /docs", () => {
  it("give every body member a value, no empty-string placeholders", () => {
    const placeholders = operations().flatMap(({ method, path, operation }) =>
      emptyStrings(docsBody(operation)).map((at) => `${method} ${path}: ${at}`),
    );
    expect(placeholders).toEqual([]);
  });

  it("are answered with a success by the Worker, every operation's", {
    timeout: 60_000,
  }, async () => {
    const environment = org.project.environments[0].id as string;
    const createExample = docsBody(doc.paths["/v1/api-keys"].post);
    /** A key made from the documented create example, as a reader following /docs would. */
    const exampleKey = async () => {
      const created = await call("POST", "/v1/api-keys", {
        token: org.admin,
        body: { ...createExample, project_id: org.project.id, environment_id: environment },
      });
      expect(created.status, created.text).toBe(201);
      return created.body as { id: string; key: string };
    };
    // A delivery to retry: rotating a key that has a webhook URL (the example has one) queues it.
    const rotated = await exampleKey();
    await call("POST", `/v1/api-keys/${rotated.id}/rotate`, { token: org.admin, body: {} });
    const deliveries = await call("GET", `/v1/projects/${org.project.id}/webhook-deliveries`, {
      token: org.admin,
    });
    const deliveryId = deliveries.body.webhook_deliveries[0].id as string;

    /** An identity of its own per operation (one may delete it), with credits to adjust. */
    let identities = 0;
    const exampleIdentity = async () => {
      const created = await call("POST", "/v1/identities", {
        token: org.admin,
        body: {
          external_id: `docs-example-${++identities}`,
          credits: { remaining: 1000, refill: null },
        },
      });
      expect(created.status, created.text).toBe(201);
      return created.body as { id: string };
    };

    /** A webhook endpoint of its own for the operations on one (at most 10 per project). */
    const exampleEndpoint = async () => {
      const created = await call("POST", `/v1/projects/${org.project.id}/webhook-endpoints`, {
        token: org.admin,
        body: { url: "https://example.com/hooks/keygate", events: ["*"] },
      });
      expect(created.status, created.text).toBe(201);
      return created.body as { id: string };
    };

    const answers: string[] = [];
    for (const { method, path, operation } of operations()) {
      const key = await exampleKey();
      const identity = await exampleIdentity();
      const endpoint = path.includes("{endpointID}") ? await exampleEndpoint() : undefined;
      const realIds: Record<string, string> = {
        id: org.project.id,
        projectId: org.project.id,
        project_id: org.project.id,
        environment_id: environment,
        orgID: org.org,
        organization_id: org.org,
        keyID: key.id,
        keyId: key.id,
        deliveryId,
        identityID: identity.id,
        ...(endpoint ? { endpointID: endpoint.id } : {}),
      };
      // Parameters as /docs fills them: a value from the parameter's or its schema's example,
      // default or first enum member; an optional one without a value is left out.
      const parameters: Json[] = operation.parameters ?? [];
      const shown = parameters.flatMap((p): [Json, string][] => {
        const { example, value } = getParameterExample(p);
        if (realIds[p.name] !== undefined) return [[p, realIds[p.name] as string]];
        return isParamDisabled(p, example) || value === undefined ? [] : [[p, String(value)]];
      });
      const url = path.replace(/\{(\w+)\}/g, (_, name: string) =>
        encodeURIComponent(shown.find(([p]) => p.name === name)?.[1] ?? ""),
      );
      const query = new URLSearchParams(
        shown.filter(([p]) => p.in === "query").map(([p, value]) => [p.name, value]),
      ).toString();
      let body = docsBody(operation);
      if (path === "/v1/leaks/github") {
        // Only GitHub can sign this door's requests: its example body, signed as GitHub would.
        answers.push(`${await signedGitHubExample(body)} ${method} ${url}`);
        continue;
      }
      if (body && typeof body === "object") {
        body = { ...body };
        for (const field of ["project_id", "environment_id", "organization_id"]) {
          if (typeof body[field] === "string") body[field] = realIds[field];
        }
        // Verify's example key is a placeholder: a real one shows the rest of the body works.
        if (path === "/v1/keys/verify") body.key = key.key;
      }
      const response = await call(method.toUpperCase(), query ? `${url}?${query}` : url, {
        token: org.admin,
        body,
      });
      answers.push(`${response.status} ${method} ${url}${query ? `?${query}` : ""}`);
      if (response.status >= 300) {
        answers.push(`  sent ${JSON.stringify(body)}\n  got ${response.text}`);
      }
      if (path === "/v1/keys/verify") {
        expect(response.body, "verify's example is a VALID verification").toMatchObject({
          valid: true,
          code: "VALID",
        });
      }
    }
    const failures = answers.filter((line) => !/^2\d\d /.test(line));
    expect(failures, answers.join("\n")).toEqual([]);
    expect(answers.filter((line) => /^\d{3} /.test(line))).toHaveLength(operations().length);
  });
});
