import { WorkerEntrypoint } from "cloudflare:workers";
import { createCore } from "../context";
import { isDomainError } from "../core/errors";
import {
  type VerifyOptions,
  type VerifyPin,
  type VerifyResult,
  verifyAndCount,
} from "../core/verify";
import { VerifyOptionsSchema } from "../schemas/verify";

// The verification types, for code inside this repository; a consumer Worker takes the same
// types from @keygate/hono (packages/hono/src/types.ts, kept equal by its types.test-d.ts).
export type { VerifyCode, VerifyOptions, VerifyResult } from "../core/verify";

/**
 * What a consumer's binding may carry, set by its configuration and not by its code:
 * `[services.props] organization_id = "org_…"` (and optionally `project_id`).
 */
export interface KeyServiceProps {
  organization_id?: string;
  project_id?: string;
}

/** The options of one call, checked by the same schema as HTTP verify's body. */
function parseOptions(options: unknown) {
  const parsed = VerifyOptionsSchema.safeParse(options ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join(".") || "options";
  throw new TypeError(`verify: ${field} ${issue?.message ?? "is invalid"}.`);
}

const PROP_NAMES = ["organization_id", "project_id"] as const;

/**
 * The binding's pin. A malformed one fails every call: never an unpinned answer by mistake.
 * An unknown member (`organizationId`, `org_id`, `ORGANIZATION_ID`) is a misspelled pin, not
 * something to ignore, so it fails too, as an unknown RPC option does.
 */
function pinOf(props: unknown): VerifyPin {
  if (props === undefined || props === null) return {};
  if (typeof props !== "object" || Array.isArray(props)) {
    throw new TypeError("KeyService binding props must be an object.");
  }
  const record = props as Record<string, unknown>;
  const unknown = Object.keys(record).filter(
    (name) => !(PROP_NAMES as readonly string[]).includes(name),
  );
  if (unknown.length > 0) {
    throw new TypeError(
      `KeyService binding props: unknown ${unknown.join(", ")} (allowed: ${PROP_NAMES.join(", ")}).`,
    );
  }
  const wrong = PROP_NAMES.filter(
    (name) =>
      record[name] !== undefined && (typeof record[name] !== "string" || record[name] === ""),
  );
  if (wrong.length > 0) {
    throw new TypeError(
      `KeyService binding props: ${wrong.join(", ")} must be a non-empty string.`,
    );
  }
  return {
    organizationId: record.organization_id as string | undefined,
    projectId: record.project_id as string | undefined,
  };
}

/**
 * What other Workers call over a service binding:
 * `[[services]] binding = "KEYGATE", service = "keygate", entrypoint = "KeyService"`, pinned
 * to a tenant by `[services.props]`. Storage failure with nothing cached throws (so does a
 * limited key whose usage store fails); it never answers `valid: true`.
 */
export class KeyService extends WorkerEntrypoint<Env, KeyServiceProps> {
  /** The same verdict as `POST /v1/keys/verify`, without the HTTP round trip. */
  async verify(key: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const pin = pinOf(this.ctx.props);
    const parsed = parseOptions(options);
    const core = createCore(this.env, this.ctx);
    try {
      const { result } = await verifyAndCount(core, key, parsed, { pin });
      return result;
    } catch (error) {
      // The RPC door's mapping of a domain error: bad input is a TypeError (HTTP's 400),
      // anything else a plain Error with its message (what crosses a service binding).
      if (isDomainError(error, "invalid")) throw new TypeError(`verify: ${error.message}`);
      if (isDomainError(error)) throw new Error(error.message);
      throw error;
    }
  }

  /** Liveness: does nothing, so it is also the floor the benchmark compares verify against. */
  async ping(): Promise<"pong"> {
    return "pong";
  }
}
