import { and, eq, isNotNull, isNull, type SQL, sql } from "drizzle-orm";
import { apiKeys } from "../../db/schema";
import type { Core } from "../context";
import { listPage, type PageRequest } from "../pagination";
import {
  isMember,
  type Principal,
  reachesOrganization,
  requireOrganization,
  requireScope,
} from "../principal";
import { findProject } from "../projects";

export interface KeyFilter {
  /** The organization a surface's path names; another than the caller's is a 404. */
  organizationId?: string | undefined;
  /** One project's keys, or with `null` the org-scoped keys only. */
  projectId?: string | null | undefined;
  /** The owner in the customer's own system (`?external_id=`). */
  externalId?: string | undefined;
}

/**
 * Keys of the organization the caller reaches, oldest first. `projectId` narrows to one
 * project, or to the org-scoped keys; a project-scoped API key only ever sees its own project,
 * a member (not an admin) never sees an org-scoped key.
 */
export async function listKeys(
  core: Core,
  principal: Principal,
  filter: KeyFilter,
  page: PageRequest,
) {
  if (filter.organizationId !== undefined) requireOrganization(principal, filter.organizationId);
  requireScope(principal, "keys:read");
  let scope: SQL | undefined;
  const seesOrgKeys = reachesOrganization(principal) && !isMember(principal);
  if (filter.projectId === null) {
    scope = seesOrgKeys ? isNull(apiKeys.projectId) : sql`0`;
  } else if (filter.projectId !== undefined) {
    const project = await findProject(core, principal, filter.projectId);
    scope = eq(apiKeys.projectId, project.id);
  } else if (principal.type === "api_key" && principal.projectId !== null) {
    scope = eq(apiKeys.projectId, principal.projectId);
  } else if (!seesOrgKeys) {
    scope = isNotNull(apiKeys.projectId);
  }
  if (filter.externalId !== undefined) {
    scope = and(scope, eq(apiKeys.externalId, filter.externalId));
  }
  const projectFilter = filter.projectId === null ? "(organization)" : filter.projectId;
  const list = {
    kind: "api_keys",
    organizationId: principal.organizationId,
    // A cursor opens only on the list with the same filters.
    filter:
      filter.externalId === undefined
        ? projectFilter
        : JSON.stringify([projectFilter ?? null, filter.externalId]),
  };
  return listPage(core, apiKeys, list, scope, page, "oldest");
}
