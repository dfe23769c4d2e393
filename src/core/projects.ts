import { and, asc, eq, isNull, lte, or } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import {
  type EnvironmentRow,
  environments,
  type LEAK_POLICIES,
  type ProjectRow,
  projects,
} from "../db/schema";
import { auditedChange, auditInsert } from "./audit";
import { type Core, defaultKeyPrefix } from "./context";
import { decrypt, encrypt, newWebhookSecret } from "./crypto";
import { conflict, forbidden, invalid, notFound } from "./errors";
import { type ListedTable, listPage, type PageRequest } from "./pagination";
import {
  type Actor,
  type Principal,
  reachesOrganization,
  reachesProject,
  requireAdmin,
  requireScope,
} from "./principal";

export type LeakPolicy = (typeof LEAK_POLICIES)[number];

/** Every new project starts with these environments. */
export const DEFAULT_ENVIRONMENTS = ["live", "test"] as const;
/** After a secret rotation, deliveries are also signed with the old secret for this long. */
export const PREVIOUS_SECRET_TTL_MS = 24 * 60 * 60 * 1000;

export async function createProject(
  core: Core,
  actor: Actor,
  input: { name: string; keyPrefix?: string | undefined; leakPolicy?: LeakPolicy | undefined },
) {
  const { principal } = actor;
  requireScope(principal, "projects:write");
  if (!reachesOrganization(principal)) {
    throw forbidden("A project-scoped API key cannot create projects.");
  }
  const now = core.now();
  const secret = newWebhookSecret();
  const id = crypto.randomUUID();
  const [inserted, insertedEnvs] = await core.db.batch([
    core.db
      .insert(projects)
      .values({
        id,
        organizationId: principal.organizationId,
        name: input.name,
        keyPrefix: input.keyPrefix ?? defaultKeyPrefix(core.env),
        ...(input.leakPolicy === undefined ? {} : { leakPolicy: input.leakPolicy }),
        webhookSecretEnc: await encrypt(core.env.ENCRYPTION_KEY, secret),
        createdAt: now,
        updatedAt: now,
      })
      .returning(),
    core.db
      .insert(environments)
      .values(
        DEFAULT_ENVIRONMENTS.map((name) => ({
          id: crypto.randomUUID(),
          organizationId: principal.organizationId,
          projectId: id,
          name,
          createdAt: now,
        })),
      )
      .returning(),
    auditInsert(core, actor, {
      action: "project.created",
      targetType: "project",
      targetId: id,
      projectId: id,
      metadata: { name: input.name },
    }),
  ]);
  return {
    project: inserted[0] as ProjectRow,
    environments: insertedEnvs,
    webhookSigningSecret: secret,
  };
}

/**
 * The project, if the caller's organization owns it and the caller reaches it; 404 otherwise,
 * so a project of another organization is indistinguishable from one that does not exist.
 */
export async function findProject(
  core: Core,
  principal: Principal,
  projectId: string,
): Promise<ProjectRow> {
  const project = await core.db.query.projects.findFirst({
    where: and(eq(projects.organizationId, principal.organizationId), eq(projects.id, projectId)),
  });
  if (!project || !reachesProject(principal, project.id)) throw notFound("Project");
  return project;
}

export async function getProject(core: Core, principal: Principal, projectId: string) {
  requireScope(principal, "projects:read");
  return findProject(core, principal, projectId);
}

/**
 * One page of a project's rows of `table` (its webhook endpoints, its deliveries), read with
 * `projects:read`: the project first (404 beyond the caller's reach), then its rows alone.
 */
export async function listProjectRows<T extends ListedTable & { projectId: SQLiteColumn }>(
  core: Core,
  principal: Principal,
  projectId: string,
  listed: { table: T; kind: string; order: "oldest" | "newest" },
  page: PageRequest,
) {
  requireScope(principal, "projects:read");
  const project = await findProject(core, principal, projectId);
  const list = { kind: listed.kind, organizationId: project.organizationId, filter: project.id };
  const inProject = eq(listed.table.projectId, project.id);
  return listPage(core, listed.table, list, inProject, page, listed.order);
}

export async function listProjects(core: Core, principal: Principal, page: PageRequest) {
  requireScope(principal, "projects:read");
  const list = { kind: "projects", organizationId: principal.organizationId };
  const own =
    principal.type === "api_key" && principal.projectId !== null
      ? eq(projects.id, principal.projectId)
      : undefined;
  return listPage(core, projects, list, own, page, "oldest");
}

export async function updateProject(
  core: Core,
  actor: Actor,
  projectId: string,
  patch: {
    name?: string | undefined;
    keyPrefix?: string | undefined;
    leakPolicy?: LeakPolicy | undefined;
  },
) {
  requireScope(actor.principal, "projects:write");
  const project = await findProject(core, actor.principal, projectId);
  const changes = {
    ...(patch.name === undefined ? {} : { name: patch.name }),
    ...(patch.keyPrefix === undefined ? {} : { keyPrefix: patch.keyPrefix }),
    ...(patch.leakPolicy === undefined ? {} : { leakPolicy: patch.leakPolicy }),
  };
  if (Object.keys(changes).length === 0) return project;
  const updated = await auditedChange<ProjectRow>(
    core,
    actor,
    core.db
      .update(projects)
      .set({ ...changes, updatedAt: core.now() })
      .where(and(eq(projects.organizationId, project.organizationId), eq(projects.id, project.id)))
      .returning(),
    {
      action: "project.updated",
      targetType: "project",
      targetId: project.id,
      projectId: project.id,
      // By the project object's field names (key_prefix), not the columns; JSON drops the
      // fields left unchanged (undefined).
      metadata: {
        changes: {
          name: changes.name,
          key_prefix: changes.keyPrefix,
          leak_policy: changes.leakPolicy,
        },
      },
    },
  );
  if (!updated) throw notFound("Project");
  return updated;
}

export async function listEnvironments(core: Core, principal: Principal, projectId: string) {
  requireScope(principal, "projects:read");
  const project = await findProject(core, principal, projectId);
  return core.db
    .select()
    .from(environments)
    .where(
      and(
        eq(environments.organizationId, project.organizationId),
        eq(environments.projectId, project.id),
      ),
    )
    .orderBy(asc(environments.seq));
}

export async function createEnvironment(
  core: Core,
  actor: Actor,
  projectId: string,
  name: string,
): Promise<EnvironmentRow> {
  requireScope(actor.principal, "projects:write");
  const project = await findProject(core, actor.principal, projectId);
  const id = crypto.randomUUID();
  // Only if the insert happened: a duplicate name must leave no audit row behind.
  const environment = await auditedChange<EnvironmentRow>(
    core,
    actor,
    core.db
      .insert(environments)
      .values({
        id,
        organizationId: project.organizationId,
        projectId: project.id,
        name,
        createdAt: core.now(),
      })
      .onConflictDoNothing()
      .returning(),
    {
      action: "environment.created",
      targetType: "environment",
      targetId: id,
      projectId: project.id,
      metadata: { name },
    },
  );
  if (!environment) throw conflict(`Project already has an environment named "${name}".`);
  return environment;
}

/**
 * The environment a new key belongs to: by id, by name, or the project's `live` one.
 * A reference to an environment outside the project is a 400 naming the field.
 */
export async function resolveEnvironment(
  core: Core,
  project: ProjectRow,
  ref: { id?: string | undefined; name?: string | undefined },
): Promise<EnvironmentRow> {
  const where = ref.id
    ? eq(environments.id, ref.id)
    : eq(environments.name, ref.name ?? DEFAULT_ENVIRONMENTS[0]);
  const environment = await core.db.query.environments.findFirst({
    where: and(
      eq(environments.organizationId, project.organizationId),
      eq(environments.projectId, project.id),
      where,
    ),
  });
  if (!environment) {
    // Named as the caller named it: by id (`environment_id`) or by name (`environment`).
    const field = ref.id ? "environment_id" : "environment";
    throw invalid(field, "is not an environment of this project", ref.id ?? ref.name);
  }
  return environment;
}

/** The current `whsec_` secret, and the previous one while it is still honoured. */
export async function webhookSecrets(core: Core, project: ProjectRow) {
  const current = await decrypt(core.env.ENCRYPTION_KEY, project.webhookSecretEnc);
  const previousLive =
    project.previousWebhookSecretEnc !== null &&
    project.previousWebhookSecretExpiresAt !== null &&
    project.previousWebhookSecretExpiresAt > core.now();
  const previous = previousLive
    ? await decrypt(core.env.ENCRYPTION_KEY, project.previousWebhookSecretEnc as string)
    : null;
  return {
    current,
    previous,
    previousExpiresAt: previousLive ? project.previousWebhookSecretExpiresAt : null,
  };
}

export async function getWebhookSecret(core: Core, actor: Actor, projectId: string) {
  const project = await findProject(core, actor.principal, projectId);
  requireAdmin(actor.principal, "read a project's webhook signing secret");
  return webhookSecrets(core, project);
}

/**
 * A new secret; the old one keeps signing alongside it for 24 h so receivers can switch.
 * Refused (409) while a previous secret is still in that overlap: a second rotation would
 * drop it before its 24 h were up, and receivers still on it would stop verifying.
 */
export async function rotateWebhookSecret(core: Core, actor: Actor, projectId: string) {
  const project = await findProject(core, actor.principal, projectId);
  requireAdmin(actor.principal, "rotate a project's webhook signing secret");
  const now = core.now();
  const overlapEnds = project.previousWebhookSecretExpiresAt;
  if (project.previousWebhookSecretEnc !== null && overlapEnds !== null && overlapEnds > now) {
    throw conflict(
      `The previous webhook signing secret is still honoured until ${new Date(overlapEnds).toISOString()}; rotate again after that.`,
    );
  }
  const secret = newWebhookSecret();
  const row = await auditedChange<ProjectRow>(
    core,
    actor,
    core.db
      .update(projects)
      .set({
        webhookSecretEnc: await encrypt(core.env.ENCRYPTION_KEY, secret),
        previousWebhookSecretEnc: project.webhookSecretEnc,
        previousWebhookSecretExpiresAt: now + PREVIOUS_SECRET_TTL_MS,
        updatedAt: now,
      })
      .where(
        and(
          eq(projects.organizationId, project.organizationId),
          eq(projects.id, project.id),
          // Conditional: of two concurrent rotations one wins; the other would otherwise
          // hand its caller a secret that is neither current nor previous.
          eq(projects.webhookSecretEnc, project.webhookSecretEnc),
          or(
            isNull(projects.previousWebhookSecretExpiresAt),
            lte(projects.previousWebhookSecretExpiresAt, now),
          ),
        ),
      )
      .returning(),
    {
      action: "project.webhook_secret_rotated",
      targetType: "project",
      targetId: project.id,
      projectId: project.id,
    },
  );
  if (!row) throw conflict("The webhook signing secret was rotated concurrently; read it again.");
  return webhookSecrets(core, row);
}
