// The wire shapes of the key governance fields (SPEC Part 2 "Key governance fields" and
// "Part 2 details"), shared by every create route, PATCH and the key object.
import { z } from "@hono/zod-openapi";
import {
  type CreditsSetting,
  type GovernanceInput,
  hasProtoMember,
  jsonDepth,
  type KeyMeta,
  MAX_CREDITS,
  META_MAX_BYTES,
  META_MAX_DEPTH,
  type RateLimitRule,
  type RefillRule,
  utf8Length,
} from "../core/governance";
import { normaliseBlock } from "../core/ip";

export const EnabledSchema = z
  .boolean()
  .openapi({ description: "A disabled key verifies `DISABLED`; default `true`." });

const isJsonObject = (value: unknown): value is KeyMeta =>
  typeof value === "object" && value !== null && !Array.isArray(value);

// Checked, not rebuilt: the value is kept exactly as parsed. A `__proto__` member is refused:
// any later copy by assignment would make it the object's prototype.
export const MetaSchema = z
  .unknown()
  .superRefine((meta, ctx) => {
    if (!isJsonObject(meta)) {
      ctx.addIssue({ code: "custom", message: "must be a JSON object" });
    } else if (jsonDepth(meta, META_MAX_DEPTH + 1) > META_MAX_DEPTH) {
      ctx.addIssue({ code: "custom", message: `must be at most ${META_MAX_DEPTH} levels deep` });
    } else if (hasProtoMember(meta, META_MAX_DEPTH + 1)) {
      ctx.addIssue({ code: "custom", message: "must not have a __proto__ member" });
    } else if (utf8Length(JSON.stringify(meta)) > META_MAX_BYTES) {
      ctx.addIssue({ code: "custom", message: `must be at most ${META_MAX_BYTES} bytes as JSON` });
    }
  })
  // An empty object is no metadata: unset fields are null, never {}.
  .transform((meta) => (Object.keys(meta as KeyMeta).length === 0 ? null : (meta as KeyMeta)))
  .openapi({
    type: "object",
    additionalProperties: {},
    description:
      "A JSON object returned by verify: at most 4 KiB (UTF-8 of its JSON) and 5 levels deep (the object itself is level 1).",
    example: { plan: "pro" },
  });

export const ExternalIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._:@-]{1,255}$/, "must be 1–255 characters of letters, digits and . _ : @ -")
  .openapi({ description: "The key's owner in your own system.", example: "user_1234" });

// The address forms src/core/ip.ts reads, as patterns for the document (tested against it).
const OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const IPV4 = `${OCTET}(\\.${OCTET}){3}`;
const GROUP = "[0-9A-Fa-f]{1,4}";
/** `head` groups, `::`, then at most `room - head` groups (`room`: 7, or 5 before an IPv4 tail). */
const compressed = (room: number, tail: string) =>
  Array.from({ length: room + 1 }, (_, head) => {
    const repeat = (text: string, times: string) => (times === "0" ? "" : `(${text}){${times}}`);
    const before = head === 0 ? "" : `${GROUP}${repeat(`:${GROUP}`, String(head - 1))}`;
    const rest = room - head;
    const after = tail
      ? `${repeat(`${GROUP}:`, `0,${rest}`)}${tail}`
      : rest === 0
        ? ""
        : `(${GROUP}${repeat(`:${GROUP}`, `0,${rest - 1}`)})?`;
    return `${before}::${after}`;
  });
/** RFC 4291 text forms: eight groups, or fewer around one `::`, optionally ending in IPv4. */
const IPV6 = `(${[
  `(${GROUP}:){7}${GROUP}`,
  `(${GROUP}:){6}${IPV4}`,
  ...compressed(7, ""),
  ...compressed(5, IPV4),
].join("|")})`;
export const IP_ADDRESS_PATTERN = `^(${IPV4}|${IPV6})$`;
export const IP_BLOCK_PATTERN = `^(${IPV4}(/(3[0-2]|[12]?[0-9]))?|${IPV6}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$`;

const IpEntrySchema = z
  .string()
  .openapi({
    pattern: IP_BLOCK_PATTERN,
    description:
      "An IPv4 address (`203.0.113.7`, no leading zeros), an IPv6 address (RFC 4291 text, no zone) or either with a `/prefix` (CIDR block, 0–32 or 0–128).",
    example: "203.0.113.0/24",
  })
  .transform((value, ctx) => {
    const normal = normaliseBlock(value);
    if (normal === null) {
      ctx.addIssue({ code: "custom", message: "must be an IPv4 or IPv6 address or CIDR block" });
      return z.NEVER;
    }
    return normal;
  });

/** `[]` is the same as null: any address. Entries come back normalised. */
export const IpAllowlistSchema = z
  .array(IpEntrySchema)
  .max(50)
  .transform((list): string[] | null => (list.length === 0 ? null : [...new Set(list)]))
  .openapi({
    description:
      "Up to 50 IPv4/IPv6 addresses or CIDR blocks (see the items' pattern), returned normalised (RFC 5952 IPv6, host bits cleared, duplicates dropped); verify with another `ip` answers `IP_NOT_ALLOWED`. `null` or `[]`: any address.",
    example: ["203.0.113.0/24", "2001:db8::/32"],
  });

const RateLimitNameSchema = z
  .string()
  .regex(/^[a-z0-9_-]{1,32}$/, "must be 1–32 characters of a-z, 0-9, _ and -")
  .openapi({ example: "requests" });

const RateLimitWireSchema = z
  .strictObject({
    name: RateLimitNameSchema,
    limit: z.number().int().min(1).max(1_000_000).openapi({ example: 100 }),
    duration_ms: z.number().int().min(1_000).max(86_400_000).openapi({ example: 60_000 }),
  })
  .openapi("RateLimit");

/** `[]` is the same as null: no limits. */
export const RateLimitsSchema = z
  .array(RateLimitWireSchema)
  .max(5)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((limit, i) => {
      if (seen.has(limit.name)) {
        ctx.addIssue({ code: "custom", message: "must be unique per key", path: [i, "name"] });
      }
      seen.add(limit.name);
    });
  })
  .transform((list): RateLimitRule[] | null =>
    list.length === 0
      ? null
      : list.map((r) => ({ name: r.name, limit: r.limit, durationMs: r.duration_ms })),
  )
  .openapi({
    description:
      "Up to 5 fixed windows aligned to the epoch; never more than `limit` units granted per window. Each `name` at most once (a name given twice is a 400). `null` or `[]`: none.",
    uniqueItems: true,
  });

const RefillAmountSchema = z.number().int().min(1).max(MAX_CREDITS).openapi({ example: 1000 });
const INTERVAL_MESSAGE = 'Invalid option: expected one of "daily"|"monthly"';

/** A union on `interval`, so the document says what a daily refill takes: no `day`. */
const RefillWireSchema = z
  .discriminatedUnion(
    "interval",
    [
      z
        .strictObject({
          interval: z.literal("daily"),
          amount: RefillAmountSchema,
          day: z.null({ error: "only a monthly refill has a day" }).optional(),
        })
        .openapi("DailyRefill", { description: "At 00:00 UTC each day." }),
      z
        .strictObject({
          interval: z.literal("monthly"),
          amount: RefillAmountSchema,
          day: z.number().int().min(1).max(31).nullable().optional().openapi({
            description: "Day of the month, default 1, clamped to the month's length.",
          }),
        })
        .openapi("MonthlyRefill", { description: "At 00:00 UTC of `day` each month." }),
    ],
    { error: (issue) => (issue.code === "invalid_union" ? INTERVAL_MESSAGE : undefined) },
  )
  .openapi("CreditsRefill", {
    discriminator: {
      propertyName: "interval",
      mapping: {
        daily: "#/components/schemas/DailyRefill",
        monthly: "#/components/schemas/MonthlyRefill",
      },
    },
    description:
      "At 00:00 UTC of each day (daily) or of `day` (monthly, default 1, clamped to the month's length), `remaining` is set to `amount`. A daily refill has no `day` (400).",
  })
  .transform(
    (refill): RefillRule => ({
      interval: refill.interval,
      amount: refill.amount,
      day: refill.interval === "daily" ? null : (refill.day ?? 1),
    }),
  );

export const CreditsSchema = z
  .strictObject({
    remaining: z.number().int().min(0).max(MAX_CREDITS).openapi({ example: 1000 }),
    refill: RefillWireSchema.nullable().optional(),
  })
  .transform((c): CreditsSetting => ({ remaining: c.remaining, refill: c.refill ?? null }))
  .openapi({ description: "`null`: unlimited. Each verification spends its `cost`." });

/**
 * PATCH's credits: as on create, or `{ refill }` alone, which changes the refill rule and
 * keeps the live balance (a balance read earlier and sent back would undo what was spent).
 */
export const CreditsChangeSchema = z
  .strictObject({
    remaining: z.number().int().min(0).max(MAX_CREDITS).optional(),
    refill: RefillWireSchema.nullable().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.remaining === undefined && c.refill === undefined) {
      ctx.addIssue({ code: "custom", message: "needs remaining, refill or both" });
    }
  })
  .transform((c): CreditsSetting | { refill: RefillRule | null } =>
    c.remaining === undefined
      ? { refill: c.refill ?? null }
      : { remaining: c.remaining, refill: c.refill ?? null },
  )
  .openapi({
    description:
      "`null`: unlimited. `remaining` sets the live balance; `refill` alone changes the refill rule and keeps the live balance.",
  });

/** The governance members of every create body and of PATCH: optional, `null` clears. */
export const governanceBodyFields = {
  enabled: EnabledSchema.optional(),
  meta: MetaSchema.nullable().optional(),
  external_id: ExternalIdSchema.nullable().optional(),
  ip_allowlist: IpAllowlistSchema.nullable().optional(),
  ratelimits: RateLimitsSchema.nullable().optional(),
  credits: CreditsSchema.nullable().optional(),
};

/** PATCH's governance members: `credits` may also change the refill alone. */
export const governancePatchFields = {
  ...governanceBodyFields,
  credits: CreditsChangeSchema.nullable().optional(),
};

type GovernanceBody = {
  [K in keyof typeof governancePatchFields]?: z.output<(typeof governancePatchFields)[K]>;
};

/** A parsed body's governance members as the core's input. */
export const toGovernanceInput = (body: GovernanceBody): GovernanceInput => {
  const credits = body.credits;
  const refillAlone = credits !== undefined && credits !== null && !("remaining" in credits);
  return {
    enabled: body.enabled,
    meta: body.meta,
    externalId: body.external_id,
    ipAllowlist: body.ip_allowlist,
    ratelimits: body.ratelimits,
    credits: refillAlone ? undefined : (credits as CreditsSetting | null | undefined),
    creditsRefill: refillAlone ? credits.refill : undefined,
  };
};

// ---------- on the key object ----------

export const RateLimitOutSchema = z.object({
  name: z.string(),
  limit: z.number().int(),
  duration_ms: z.number().int(),
});

export const CreditsOutSchema = z
  .object({
    remaining: z.number().int(),
    refill: z
      .object({
        interval: z.enum(["daily", "monthly"]),
        amount: z.number().int(),
        day: z.number().int().nullable(),
      })
      .nullable(),
  })
  .openapi("Credits");

/** The governance members of Keygate's key object; unset ones are null. */
export const governanceKeyFields = {
  enabled: z.boolean(),
  meta: z.record(z.string(), z.unknown()).nullable(),
  external_id: z.string().nullable(),
  ip_allowlist: z.array(z.string()).nullable(),
  ratelimits: z.array(RateLimitOutSchema).nullable(),
  credits: CreditsOutSchema.nullable().openapi({
    description:
      "`GET /v1/api-keys/{keyID}` shows the exact `remaining`; lists may show one up to 60 s old.",
  }),
};

// The presenter is the core's (key objects are also built for webhook events there).
export { type GovernanceRow, toGovernanceFields } from "../core/keys/present";
