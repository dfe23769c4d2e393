// The `keygate` CLI's pure parts: how it prints nested answers for people, and where it may
// send a secret. (The CLI end to end, as a process: scripts/e2e-cli.mjs, `npm run test:cli`.)
import { describe, expect, it } from "vitest";
import { cell, record, table } from "../src/cli-format";
import { isLoopbackHost, transportProblem } from "../src/cli-safety";

describe("CLI output for people", () => {
  it("prints a created project's environments as fields, never [object Object]", () => {
    const project = {
      id: "prj_1",
      name: "Billing",
      environments: [
        { id: "env_live", name: "live" },
        { id: "env_test", name: "test" },
      ],
      meta: { plan: { tier: "pro" } },
      scopes: ["read", "deploy"],
      revoked_at: null,
    };
    const lines = record(project).split("\n");
    expect(lines).toEqual([
      "id                   prj_1",
      "name                 Billing",
      "environments.0.id    env_live",
      "environments.0.name  live",
      "environments.1.id    env_test",
      "environments.1.name  test",
      "meta.plan.tier       pro",
      "scopes               read,deploy",
      "revoked_at           -",
    ]);
    expect(record(project)).not.toContain("[object Object]");
  });

  it("writes nested values in table cells as JSON, lists of scalars as a,b", () => {
    expect(cell([{ id: "env_live" }])).toBe('[{"id":"env_live"}]');
    expect(cell({ plan: "pro" })).toBe('{"plan":"pro"}');
    expect(cell(["read", "deploy"])).toBe("read,deploy");
    expect(cell([])).toBe("-");
    expect(cell(null)).toBe("-");
    expect(table([{ id: "k1", meta: { a: 1 } }], ["id", "meta"])).toBe('ID  META\nk1  {"a":1}');
  });
});

describe("where the CLI sends a token or key", () => {
  it("https anywhere, plain http only to loopback", () => {
    for (const url of [
      "https://keygate.example.com",
      "http://127.0.0.1:8787",
      "http://127.8.9.10",
      "http://localhost:8787/",
      "http://api.localhost",
      "http://[::1]:8787",
    ]) {
      expect(transportProblem(url), url).toBeNull();
    }
    for (const url of [
      "http://keygate.example.com",
      "http://10.0.0.5:8787",
      "http://0.0.0.0:8787",
      "http://127.0.0.1.example.com",
      "http://localhost.example.com",
      "http://[::2]",
    ]) {
      expect(transportProblem(url), url).toMatch(/plain http/);
    }
    expect(transportProblem("ftp://127.0.0.1")).toMatch(/not an http/);
    expect(transportProblem("127.0.0.1:8787")).toMatch(/not an http|not a URL/);
    expect(isLoopbackHost("LOCALHOST")).toBe(true);
  });
});
