// Shared field schemas (SPEC "Input limits"): one check per field, so a bad value gets one
// `errors[]` entry with one message.
import { z } from "@hono/zod-openapi";
import {
  normaliseWebhookUrl,
  WEBHOOK_URL_PATTERN,
  WEBHOOK_URL_RULE,
  webhookUrlProblem,
} from "../core/webhook-url";

export { IdSchema, ScopeSchema, ScopesSchema } from "../core/fields";

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

export const NameSchema = text(1, 128).openapi({ example: "CI deploy key" });
/** A timestamp in a response: RFC 3339 UTC, or null where the field is nullable. */
export const InstantSchema = z
  .string()
  .openapi({ format: "date-time", example: "2019-08-24T14:15:22Z" });

/** The last instant whose RFC 3339 UTC form has a four-digit year (what we answer with). */
const LAST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** RFC 3339 `date-time` (section 5.6): `T`/`Z` in either case, fraction and offset optional. */
export const RFC3339_PATTERN =
  "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$";
const RFC3339 = new RegExp(RFC3339_PATTERN);

/** Milliseconds of an RFC 3339 date-time, or null if it is not one (Feb 30, 24:00, …). */
export function parseTimestamp(value: string): number | null {
  if (!RFC3339.test(value)) return null;
  const upper = value.toUpperCase();
  const [y, mo, d, h, mi, sec] = [0, 5, 8, 11, 14, 17].map((at) =>
    Number(upper.slice(at, at === 0 ? 4 : at + 2)),
  ) as [number, number, number, number, number, number];
  const day = new Date(Date.UTC(y, mo - 1, d));
  const realDate =
    day.getUTCFullYear() === y && day.getUTCMonth() === mo - 1 && day.getUTCDate() === d;
  if (!realDate || h > 23 || mi > 59 || sec > 59) return null;
  const offset = /([+-])([0-9]{2}):([0-9]{2})$/.exec(upper);
  if (offset && (Number(offset[2]) > 23 || Number(offset[3]) > 59)) return null;
  const ms = Date.parse(upper);
  return Number.isNaN(ms) ? null : ms;
}

/** One check, so one message: unparseable, or past the last four-digit year, not both. */
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
    }
  })
  .openapi({
    format: "date-time",
    pattern: RFC3339_PATTERN,
    description: "RFC 3339 date-time (`T` and `Z` in either case), at most 9999-12-31T23:59:59Z.",
    example: "2030-01-01T00:00:00Z",
  });
export const DeviceNameSchema = text(0, 128);
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
  );

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

/** Wire timestamps to the core's milliseconds, keeping "absent" and "cleared" apart. */
export const toMs = (iso: string | null | undefined) =>
  iso === undefined ? undefined : iso === null ? null : (parseTimestamp(iso) ?? Number.NaN);

export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
