import { and, eq } from "drizzle-orm";
import { type ApiKeyRow, apiKeys } from "../../db/schema";
import type { Core } from "../context";
import { forbidden, notFound } from "../errors";
import {
  isMember,
  type Principal,
  reachesOrganization,
  reachesProject,
  requireOrganization,
  requireScope,
} from "../principal";

/** Where a surface's path says a key lives: `/organizations/{orgID}/…`, `/projects/{id}/…`. */
export interface KeyPlace {
  organizationId?: string | undefined;
  projectId?: string | undefined;
}

/**
 * One key, if the caller reaches it: same organization, a project the caller reaches, and
 * the place the path names. Anything else is a 404, revealing nothing.
 */
export async function findKey(
  core: Core,
  principal: Principal,
  keyId: string,
  place: KeyPlace = {},
): Promise<ApiKeyRow> {
  if (place.organizationId !== undefined) requireOrganization(principal, place.organizationId);
  const key = await core.db.query.apiKeys.findFirst({
    where: and(eq(apiKeys.organizationId, principal.organizationId), eq(apiKeys.id, keyId)),
  });
  if (!key || !reachesProject(principal, key.projectId)) throw notFound("API key");
  if (key.projectId === null && !reachesOrganization(principal)) throw notFound("API key");
  // Org-scoped keys are the admins' (SPEC "Admin-only"): a member neither reads nor manages one.
  if (key.projectId === null && isMember(principal)) {
    throw forbidden("Only organization admins can see organization-scoped keys.");
  }
  if (place.projectId !== undefined && key.projectId !== place.projectId) {
    throw notFound("API key");
  }
  return key;
}

export async function getKey(core: Core, principal: Principal, keyId: string) {
  requireScope(principal, "keys:read");
  return findKey(core, principal, keyId);
}
