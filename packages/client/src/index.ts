// @keygate/client: Keygate's management API, typed end to end. Every path, body and answer
// comes from Keygate's OpenAPI document (schema.ts, generated); openapi-fetch makes the calls.
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type ApiKey = Schemas["ApiKey"];
export type Project = Schemas["Project"];
export type Rotation = Schemas["Rotation"];
export type VerifyResult = Schemas["VerifyResult"];
export type Identity = Schemas["Identity"];
export type IdentityVerifications = Schemas["IdentityVerifications"];
export type UsageExport = Schemas["UsageExport"];
export type Problem = Schemas["Problem"];

/** Where `npm start` serves Keygate locally. */
export const DEFAULT_URL = "http://127.0.0.1:8787";

export interface KeygateClientOptions {
  /** Keygate's base URL (default http://127.0.0.1:8787). */
  url?: string;
  /** A Clerk session token or a Keygate key with management scopes, sent as a bearer token. */
  token?: string;
  /**
   * Names the client to Keygate in the `Keygate-Client` header; keys created with
   * `client: "cli"` get `source: "cli"`.
   */
  client?: "cli";
  /** Extra headers for every request. */
  headers?: Record<string, string>;
  /** The fetch to call Keygate with (default: the global fetch), e.g. a service binding's. */
  fetch?: (request: Request) => Promise<Response>;
}

export type KeygateClient = Client<paths>;

/** A typed client: `client.GET("/v1/projects")`, `client.POST("/v1/api-keys", { body })`, … */
export function createKeygateClient(options: KeygateClientOptions = {}): KeygateClient {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.client) headers["keygate-client"] = options.client;
  return createClient<paths>({
    baseUrl: (options.url ?? DEFAULT_URL).replace(/\/+$/, ""),
    headers,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}
