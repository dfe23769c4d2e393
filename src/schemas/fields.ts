// The wire's field schemas (SPEC "Input limits"), shared by every door (HTTP routes, the
// dashboard's forms, RPC options): one check per field, so a bad value gets one `errors[]`
// entry with one message. Wire shapes live here, not in the core.
import { z } from "@hono/zod-openapi";
import { ALL_EVENTS, KEY_EVENT_TYPES } from "../core/event-types";
import {
  normaliseWebhookUrl,
  WEBHOOK_URL_PATTERN,
  WEBHOOK_URL_RULE,
  webhookUrlProblem,
} from "../core/webhook-url";

export const ScopeSchema = z
  .string()
  .regex(/^[A-Za-z0-9:._*-]{1,100}$/, "must be 1–100 characters of letters, digits and : . _ * -");
export const ScopesSchema = z
  .array(ScopeSchema)
  .max(50)
  .openapi({ example: ["keys:read", "deploy"] });
export const IdSchema = z.string().min(1).max(64);

/** Characters as JSON Schema counts them (code points), not UTF-16 units: an emoji is one. */
const characters = (value: string) => {
  let count = 0;
  for (const _ of value) count++;
  return count;
};

/** Text of `min`–`max` characters, checked and documented alike. */
const text = (min: number, max: number) =>
  z
    .string()
    .refine(
      (value) => {
        const count = characters(value);
        return count >= min && count <= max;
      },
      min > 0 ? `must be ${min}–${max} characters` : `must be at most ${max} characters`,
    )
    .openapi({ ...(min > 0 ? { minLength: min } : {}), maxLength: max });

/** Ids in examples look like the ids Keygate issues (UUIDs) and Clerk's organization ids. */
export const EXAMPLE_PROJECT_ID = "3f1c9a52-6b7e-4d0a-9c8e-2a5b7d4e1f60";
export const EXAMPLE_ENVIRONMENT_ID = "8d2e4b16-0c3a-4f5e-b7a9-6e1d3c2b5a48";
export const EXAMPLE_ORGANIZATION_ID = "org_2yQ7Lm4nX8pR1sT6vW9zB3cD5fH";

export const NameSchema = text(1, 128).openapi({ example: "CI deploy key" });
/** A timestamp in a response: RFC 3339 UTC, or null where the field is nullable. */
export const InstantSchema = z
  .string()
  .openapi({ format: "date-time", example: "2019-08-24T14:15:22Z" });

/** The first and last instants whose RFC 3339 UTC form has a four-digit year (what we answer with). */
const FIRST_INSTANT = Date.parse("0000-01-01T00:00:00Z");
const LAST_INSTANT = Date.parse("9999-12-31T23:59:59.999Z");
/**
 * RFC 3339 `date-time` (section 5.6): `T`/`Z` in either case, fraction and offset optional,
 * each field in its range; second 60 is a leap second. Whether the day exists in its month
 * (no Feb 30) is `format: date-time`'s to say.
 */
export const RFC3339_PATTERN =
  "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";
const RFC3339 = new RegExp(RFC3339_PATTERN);

/**
 * Milliseconds of an RFC 3339 date-time, or null if it is not one (Feb 30, 24:00, …). A leap
 * second (`23:59:60`) is the instant after `23:59:59`, as the clocks that repeat it see it.
 */
export function parseTimestamp(value: string): number | null {
  if (!RFC3339.test(value)) return null;
  const upper = value.toUpperCase();
  const [y, mo, d] = [0, 5, 8].map((at) => Number(upper.slice(at, at === 0 ? 4 : at + 2))) as [
    number,
    number,
    number,
  ];
  // setUTCFullYear, not Date.UTC: that one reads years 0–99 as 1900–1999.
  const day = new Date(0);
  day.setUTCFullYear(y, mo - 1, d);
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) {
    return null;
  }
  const leap = upper.slice(17, 19) === "60";
  const ms = Date.parse(leap ? `${upper.slice(0, 17)}59${upper.slice(19)}` : upper);
  return Number.isNaN(ms) ? null : leap ? ms + 1000 : ms;
}

const TIMESTAMP_RULE =
  "RFC 3339 date-time (`T` and `Z` in either case) from 0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z. A leap second (`23:59:60`) is read as the next second.";

/** One check, so one message: unparseable, or outside the four-digit years, not both. */
export const TimestampSchema = z
  .string()
  .superRefine((value, ctx) => {
    const ms = parseTimestamp(value);
    if (ms === null) {
      ctx.addIssue({
        code: "custom",
        message: "must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z",
      });
    } else if (ms > LAST_INSTANT) {
      ctx.addIssue({ code: "custom", message: "must be no later than 9999-12-31T23:59:59Z" });
    } else if (ms < FIRST_INSTANT) {
      ctx.addIssue({ code: "custom", message: "must be no earlier than 0000-01-01T00:00:00Z" });
    }
  })
  .openapi({
    format: "date-time",
    pattern: RFC3339_PATTERN,
    description: TIMESTAMP_RULE,
    example: "2030-01-01T00:00:00Z",
  });

/** A key's expiry: a timestamp in the future (the core refuses any other), `null` for none. */
export const ExpiresAtSchema = TimestampSchema.openapi({
  description: `When the key stops verifying; must be in the future (400 otherwise). \`null\`: never. ${TIMESTAMP_RULE}`,
});
export const DeviceNameSchema = text(0, 128);
/** A free-text note, e.g. on a webhook endpoint; bounded like the other short texts. */
export const DescriptionSchema = text(0, 128).openapi({ example: "Billing sync" });
export const RotationIntervalSchema = z.number().int().min(1).max(365).openapi({
  description:
    "Days between scheduled rotations (1–365). The successor reaches its holder only through `rotation_webhook_url`: without one nobody receives it, and the old key is revoked when its 24 h grace ends. Org-scoped keys cannot rotate on a schedule (400).",
});
export const GracePeriodSchema = z.number().int().min(0).max(2_592_000);
/** Prefixes and environment names: lowercase letters and digits, so a key stays one word. */
export const SlugSchema = z
  .string()
  .regex(
    /^[a-z][a-z0-9]{0,31}$/,
    "must be 1–32 lowercase letters and digits, starting with a letter",
  )
  .openapi({ example: "live" });

export const WebhookUrlSchema = z
  .string()
  .max(2048)
  .superRefine((value, ctx) => {
    const problem = webhookUrlProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  // `https://host:443/…` is `https://host/…`: kept in the one spelling.
  .transform(normaliseWebhookUrl)
  .openapi({
    format: "uri",
    pattern: WEBHOOK_URL_PATTERN,
    description: `Where rotations of this key are announced: ${WEBHOOK_URL_RULE}.`,
    example: "https://example.com/hooks/keygate",
  });

/** A webhook endpoint's subscriptions: event types, each once, or `["*"]` alone. */
export const EndpointEventsSchema = z
  .array(z.enum([...KEY_EVENT_TYPES, ALL_EVENTS]))
  .min(1)
  .max(KEY_EVENT_TYPES.length)
  .superRefine((events, ctx) => {
    if (events.includes(ALL_EVENTS) && events.length > 1) {
      ctx.addIssue({ code: "custom", message: '"*" stands alone: ["*"] or a list of event types' });
    } else if (new Set(events).size !== events.length) {
      ctx.addIssue({ code: "custom", message: "must name each event type at most once" });
    }
  })
  .openapi({
    description: `The event types delivered to this endpoint (${KEY_EVENT_TYPES.map((t) => `\`${t}\``).join(", ")}), each at most once, or \`["*"]\` for every type.`,
    example: ["api_key.revoked", "api_key.leaked"],
  });

/** Wire timestamps to the core's milliseconds, keeping "absent" and "cleared" apart. */
export const toMs = (iso: string | null | undefined) =>
  iso === undefined ? undefined : iso === null ? null : (parseTimestamp(iso) ?? Number.NaN);

export { iso } from "../core/time";
