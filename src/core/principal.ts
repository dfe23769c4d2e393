import { forbidden, notFound } from "./errors";

/** Who is calling a management route. */
export type Principal =
  | { type: "user"; organizationId: string; userId: string; isAdmin: boolean }
  | {
      type: "api_key";
      organizationId: string;
      keyId: string;
      /** null for an org-scoped key, which reaches every project of its organization. */
      projectId: string | null;
      scopes: string[];
      /** When this key stops working (its expiry or its grace end); null: never. */
      expiresAt: number | null;
    }
  /** Keygate itself, e.g. the scheduler rotating a key. Never the caller of a route. */
  | { type: "system"; organizationId: string; name: string };

/** The caller plus request facts the audit log records. */
export interface Actor {
  principal: Principal;
  ip: string | null;
  userAgent: string | null;
  /** The `Keygate-Client` request header: "cli" for the keygate CLI (keys get `source: "cli"`). */
  client?: "cli" | null;
}

export const MANAGEMENT_SCOPES = [
  "keys:read",
  "keys:write",
  "projects:read",
  "projects:write",
  "audit:read",
] as const;
export type ManagementScope = (typeof MANAGEMENT_SCOPES)[number];

export const hasScope = (scopes: readonly string[], scope: string) =>
  scopes.includes("*") || scopes.includes(scope);

/** Clerk users of the org act through their role; API keys through their scopes. */
export function requireScope(principal: Principal, scope: ManagementScope): void {
  if (principal.type === "api_key" && !hasScope(principal.scopes, scope)) {
    throw forbidden(`This API key lacks the "${scope}" scope.`);
  }
}

/**
 * Org admins: a Clerk user with the admin role, or an org-scoped API key holding `*` (the
 * automation an admin made to act for them: only admins, or such keys, can create one, and
 * no other key can grant `*`). Project keys never are, whatever their scopes.
 */
export const isAdmin = (principal: Principal) =>
  principal.type === "user"
    ? principal.isAdmin
    : principal.type === "api_key" &&
      principal.projectId === null &&
      principal.scopes.includes("*");

export function requireAdmin(principal: Principal, action: string): void {
  if (!isAdmin(principal)) throw forbidden(`Only organization admins can ${action}.`);
}

/** The org in a path must be the caller's own; any other answers 404, revealing nothing. */
export function requireOrganization(principal: Principal, organizationId: string): void {
  if (principal.organizationId !== organizationId) throw notFound("Organization");
}

/** A project key reaches only its own project; users and org keys reach the whole org. */
export const reachesProject = (principal: Principal, projectId: string | null) =>
  principal.type !== "api_key" || principal.projectId === null || principal.projectId === projectId;

/** A project-scoped key can never see org-wide resources. */
export const reachesOrganization = (principal: Principal) =>
  principal.type !== "api_key" || principal.projectId === null;

/** A Clerk user without the admin role: reads projects and their keys, never org-scoped keys. */
export const isMember = (principal: Principal) => principal.type === "user" && !principal.isAdmin;

export function actorId(principal: Principal): string {
  switch (principal.type) {
    case "user":
      return principal.userId;
    case "api_key":
      return principal.keyId;
    case "system":
      return principal.name;
  }
}

/**
 * Who is asking, as one string: a Clerk user in one organization, or an API key (a system
 * job by name). What a caller's rate limit and idempotency records are keyed by.
 */
export function callerOf(principal: Principal): string {
  switch (principal.type) {
    case "user":
      return `user:${principal.organizationId}:${principal.userId}`;
    case "api_key":
      return `key:${principal.keyId}`;
    case "system":
      return `system:${principal.name}`;
  }
}
