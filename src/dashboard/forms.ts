// Form posts → core inputs. Each form is one zod schema over its fields as text, built from
// the API's own field schemas, read by Hono's `validator("form", …)`; a refused field gets its
// message next to it, and core errors → the message next to the field they name.
import { z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { validator } from "hono/validator";
import { invalid, isDomainError } from "../core/errors";
import {
  NameSchema,
  RotationIntervalSchema,
  ScopesSchema,
  WebhookUrlSchema,
} from "../schemas/fields";
import type { FieldErrors } from "./layout";

export type FormValues = Record<string, string>;

/** What a form's handler gets: the fields as sent (to show again), and the value or why not. */
export type Submitted<T> =
  | { ok: true; values: FormValues; data: T; errors: FieldErrors }
  | { ok: false; values: FormValues; errors: FieldErrors };

/** One text per field (the last one sent; files are ignored), in an object with no prototype. */
function textsOf(body: Record<string, unknown>): FormValues {
  const values: FormValues = Object.create(null);
  for (const [key, value] of Object.entries(body)) {
    const texts = (Array.isArray(value) ? value : [value]).filter((v) => typeof v === "string");
    const last = texts.at(-1);
    if (last !== undefined) values[key] = last;
  }
  return values;
}

/** Each refused field's first message, under the field's name (`_` for the form as a whole). */
function fieldErrorsOf(error: z.ZodError): FieldErrors {
  const errors: FieldErrors = {};
  for (const issue of error.issues) {
    errors[String(issue.path[0] ?? "_")] ??= sentence(issue.message);
  }
  return errors;
}

/** Parses a form's fields with `schema`; any other content type reads as no fields. */
export function parseForm<T>(schema: z.ZodType<T>, values: FormValues): Submitted<T> {
  const parsed = schema.safeParse(values);
  return parsed.success
    ? { ok: true, values, data: parsed.data, errors: {} }
    : { ok: false, values, errors: fieldErrorsOf(parsed.error) };
}

/**
 * The validator of a form's POST: `c.req.valid("form")` is its `Submitted` value. A body its
 * content type does not describe (a broken multipart boundary) is the client's fault: a 400.
 */
export function form<T>(schema: z.ZodType<T>) {
  const read = validator("form", (body) => parseForm(schema, textsOf(body)));
  const guarded: typeof read = async (c, next) => {
    let parsed = false;
    try {
      return await read(c, async () => {
        parsed = true;
        await next();
      });
    } catch (error) {
      if (parsed || !(error instanceof HTTPException) || error.status !== 400) throw error;
      throw invalid("form", "The form could not be read; submit it again.", null);
    }
  };
  return guarded;
}

/** A field as text: absent is empty; surrounding spaces are not part of it. */
const text = z
  .string()
  .default("")
  .transform((value) => value.trim());

/** Empty is none (null); anything else must pass `schema`, after `convert` (for numbers). */
const blankOr = <T>(schema: z.ZodType<T>, convert: (value: string) => unknown = (v) => v) =>
  text.transform((value) => (value === "" ? null : convert(value))).pipe(schema.nullable());

/** The fields forms share, each read as the API reads it. */
export const fields = {
  text,
  name: text.pipe(z.string().min(1, "Give it a name.").pipe(NameSchema)),
  /** Space- or comma-separated, each once. */
  scopes: text
    .transform((value) => [...new Set(value.split(/[\s,]+/).filter(Boolean))])
    .pipe(ScopesSchema),
  /** `datetime-local` (no zone) is read as UTC, as the label says; empty = none. */
  instant: text.transform((value, ctx) => {
    if (value === "") return null;
    const ms = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
    if (!Number.isNaN(ms)) return ms;
    ctx.addIssue({ code: "custom", message: "Enter a date and time." });
    return z.NEVER;
  }),
  rotationInterval: blankOr(RotationIntervalSchema, Number),
  webhookUrl: blankOr(WebhookUrlSchema),
  /** One of `allowed`; empty is `fallback`. */
  choice: <T extends string>(allowed: readonly T[], fallback: T) =>
    text
      .transform((value) => (value === "" ? fallback : value))
      .refine((value): value is T => (allowed as readonly string[]).includes(value), {
        message: "Choose one of the options.",
      }),
};

const LOCATIONS = new Set(["body", "query", "path", "header"]);

/** `body.expires_at` (or a domain error's bare `expires_at`) → the form field `expires_at`. */
export const fieldOf = (location: string) => {
  const parts = location.split(".");
  if (parts.length > 1 && LOCATIONS.has(parts[0] as string)) parts.shift();
  return parts[0] as string;
};

/**
 * What a form shows for a refused change (the page answers 200: it is the form, shown again
 * with its messages; a browser would log a 4xx document as a console error): each field error next to its field, anything else
 * (a conflict, a refusal) above the form. Not-found, sign-in and storage errors are not a
 * form's business: they are rethrown to the page-level handler.
 */
export function formErrors(error: unknown): FieldErrors {
  if (isDomainError(error, "invalid") && error.details.field) {
    const field = fieldOf(error.details.field);
    // The domain message is `field: what is wrong`; next to the field, the name is implied.
    const message = error.message.replace(/^[\w.]+: /, "");
    return { [field]: sentence(message) };
  }
  if (isDomainError(error, "forbidden") || isDomainError(error, "conflict")) {
    return { _: error.message };
  }
  throw error;
}

/** zod and the core speak in fragments ("must be in the future"): a form shows a sentence. */
export function sentence(message: string): string {
  const text = message.trim();
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** `datetime-local` value of an instant, in UTC. */
export const localInput = (ms: number | null) =>
  ms === null ? "" : new Date(ms).toISOString().slice(0, 16);
