// Form posts → core inputs, with the same field schemas as the API, and core errors → the
// message next to the field they name.
import type { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { invalid, isDomainError } from "../core/errors";
import {
  NameSchema,
  RotationIntervalSchema,
  ScopesSchema,
  WebhookUrlSchema,
} from "../schemas/fields";
import type { FieldErrors } from "./layout";

export type FormValues = Record<string, string>;

/** Form fields as strings (urlencoded or multipart alike); files are ignored. */
export async function readForm(c: Context): Promise<FormValues> {
  const type = c.req.header("content-type") ?? "";
  if (!/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type)) return {};
  let data: FormData;
  try {
    data = await c.req.formData();
  } catch {
    // A body its content type does not describe (a broken multipart boundary): the client's fault.
    throw invalid("form", "The form could not be read; submit it again.", null);
  }
  // No prototype: a field named `__proto__` or `constructor` is a field like any other.
  const values: FormValues = Object.create(null);
  for (const [key, value] of data.entries()) {
    if (typeof value === "string") values[key] = value;
  }
  return values;
}

/** Collects per-field messages while a form is turned into a core input. */
export class FormReader {
  readonly errors: FieldErrors = {};
  constructor(readonly values: FormValues) {}

  get ok() {
    return Object.keys(this.errors).length === 0;
  }

  private check<T>(field: string, schema: z.ZodType<T>, value: unknown): T | undefined {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    this.errors[field] ??= sentence(result.error.issues[0]?.message ?? "is not valid");
    return undefined;
  }

  text(field: string): string {
    return (this.values[field] ?? "").trim();
  }

  name(field = "name"): string {
    const value = this.text(field);
    if (value === "") {
      this.errors[field] = "Give it a name.";
      return "";
    }
    return this.check(field, NameSchema, value) ?? "";
  }

  /** Space- or comma-separated. */
  scopes(field = "scopes"): string[] {
    const scopes = this.text(field)
      .split(/[\s,]+/)
      .filter(Boolean);
    return this.check(field, ScopesSchema, [...new Set(scopes)]) ?? [];
  }

  /** `datetime-local` (no zone) is read as UTC, as the label says; empty = none. */
  instant(field: string): number | null {
    const value = this.text(field);
    if (value === "") return null;
    const ms = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
    if (Number.isNaN(ms)) {
      this.errors[field] = "Enter a date and time.";
      return null;
    }
    return ms;
  }

  rotationInterval(field = "rotation_interval_days"): number | null {
    const value = this.text(field);
    if (value === "") return null;
    return this.check(field, RotationIntervalSchema, Number(value)) ?? null;
  }

  webhookUrl(field = "rotation_webhook_url"): string | null {
    const value = this.text(field);
    if (value === "") return null;
    return this.check(field, WebhookUrlSchema, value) ?? null;
  }

  choice<T extends string>(field: string, allowed: readonly T[], fallback: T): T {
    const value = this.text(field);
    if (value === "") return fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.errors[field] = "Choose one of the options.";
    return fallback;
  }
}

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
