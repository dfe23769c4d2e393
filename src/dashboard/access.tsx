// A key's access controls: enabled, rate limits and credits. Read with the API's own wire
// schemas (src/schemas/governance.ts), so the form refuses exactly what the API refuses.

import { z } from "@hono/zod-openapi";
import type { FC } from "hono/jsx";
import type { GovernanceInput, RateLimitRule } from "../core/governance";
import type { ApiKeyRow } from "../db/schema";
import { CreditsSchema, RateLimitsSchema } from "../schemas/governance";
import type { FormValues } from "./forms";
import { BASE, described, Field, type FieldErrors, FormError } from "./layout";

export const MAX_LIMITS = 5;

const WINDOWS = [
  { seconds: 1, label: "second" },
  { seconds: 10, label: "10 seconds" },
  { seconds: 60, label: "minute" },
  { seconds: 3600, label: "hour" },
  { seconds: 86_400, label: "day" },
] as const;

const windowLabel = (ms: number) => {
  const known = WINDOWS.find((w) => w.seconds * 1000 === ms);
  return known ? known.label : `${ms / 1000} seconds`;
};

const number = (text: string) => (text.trim() === "" ? Number.NaN : Number(text.trim()));

/**
 * What the form shows for a key: its limits (and one blank row), its credits with the live
 * balance (`remaining`, from the usage store; the row holds the balance last set).
 */
export function accessValues(key: ApiKeyRow, remaining: number | null = null): FormValues {
  const values: FormValues = { enabled: key.enabled ? "on" : "" };
  (key.ratelimits ?? []).forEach((limit, i) => {
    values[`rl_name_${i}`] = limit.name;
    values[`rl_limit_${i}`] = String(limit.limit);
    values[`rl_window_${i}`] = String(limit.durationMs / 1000);
  });
  if (key.creditsRemaining !== null) {
    values.credits_remaining = String(remaining ?? key.creditsRemaining);
    // What was shown: a balance sent back unedited is not set again (it would give back what
    // was spent since the page was rendered).
    values.credits_remaining_shown = values.credits_remaining;
    values.refill_interval = key.creditsRefill?.interval ?? "";
    values.refill_amount = key.creditsRefill ? String(key.creditsRefill.amount) : "";
    values.refill_day = key.creditsRefill?.day ? String(key.creditsRefill.day) : "";
  }
  return values;
}

const trimmed = (values: FormValues, field: string) => (values[field] ?? "").trim();

/** Rate-limit rows as the API reads them; rows left blank are dropped; errors name the row's field. */
function limitsOf(values: FormValues, ctx: z.RefinementCtx): RateLimitRule[] | null | undefined {
  const rows: { index: number; wire: { name: string; limit: number; duration_ms: number } }[] = [];
  for (let i = 0; i < MAX_LIMITS; i++) {
    const name = trimmed(values, `rl_name_${i}`);
    const limit = trimmed(values, `rl_limit_${i}`);
    if (name === "" && limit === "") continue;
    const window = number(trimmed(values, `rl_window_${i}`));
    rows.push({
      index: i,
      wire: { name, limit: number(limit), duration_ms: Math.round(window * 1000) },
    });
  }
  const limits = RateLimitsSchema.safeParse(rows.map((r) => r.wire));
  if (limits.success) return limits.data;
  for (const issue of limits.error.issues) {
    const [row, member] = issue.path as [number | undefined, string | undefined];
    const index = rows[row ?? 0]?.index ?? 0;
    const field =
      member === "limit" ? "rl_limit" : member === "duration_ms" ? "rl_window" : "rl_name";
    ctx.addIssue({ code: "custom", message: issue.message, path: [`${field}_${index}`] });
  }
  return undefined;
}

/**
 * Credits as the API reads them. A balance sent back as it was shown is not set again (it
 * would give back what was spent since the page was rendered): then only the refill changes.
 */
function creditsOf(
  values: FormValues,
  ctx: z.RefinementCtx,
): Pick<GovernanceInput, "credits" | "creditsRefill"> {
  const remaining = trimmed(values, "credits_remaining");
  if (remaining === "") return { credits: null };
  const interval = trimmed(values, "refill_interval");
  const day = trimmed(values, "refill_day");
  const parsed = CreditsSchema.safeParse({
    remaining: number(remaining),
    refill:
      interval === ""
        ? null
        : {
            interval,
            amount: number(trimmed(values, "refill_amount")),
            ...(interval === "monthly" && day !== "" ? { day: number(day) } : {}),
          },
  });
  if (parsed.success) {
    return remaining === trimmed(values, "credits_remaining_shown")
      ? { creditsRefill: parsed.data.refill }
      : { credits: parsed.data };
  }
  for (const issue of parsed.error.issues) {
    const [first, second] = issue.path.map(String);
    const field =
      first === "remaining"
        ? "credits_remaining"
        : second === "day"
          ? "refill_day"
          : second === "interval"
            ? "refill_interval"
            : "refill_amount";
    ctx.addIssue({ code: "custom", message: issue.message, path: [field] });
  }
  return {};
}

const formValues = z.custom<FormValues>();

/** An identity's limits and credits form (the rows and credits of a key's access form). */
export const LimitsFormSchema = formValues.transform((values, ctx) => ({
  ratelimits: limitsOf(values, ctx),
  ...creditsOf(values, ctx),
}));

/** A key's access form: enabled, its limits and its credits. */
export const AccessFormSchema = formValues.transform(
  (values, ctx): GovernanceInput => ({
    enabled: values.enabled === "on",
    ratelimits: limitsOf(values, ctx),
    ...creditsOf(values, ctx),
  }),
);

/** Only what changed: rewriting unchanged limits would reset their windows. */
export function changedAccess(key: ApiKeyRow, input: GovernanceInput): GovernanceInput {
  const changes: GovernanceInput = {};
  if (input.enabled !== undefined && input.enabled !== key.enabled) changes.enabled = input.enabled;
  if (
    input.ratelimits !== undefined &&
    JSON.stringify(input.ratelimits) !== JSON.stringify(key.ratelimits)
  ) {
    changes.ratelimits = input.ratelimits;
  }
  const current =
    key.creditsRemaining === null
      ? null
      : { remaining: key.creditsRemaining, refill: key.creditsRefill ?? null };
  if (input.credits !== undefined && JSON.stringify(input.credits) !== JSON.stringify(current)) {
    changes.credits = input.credits;
  }
  if (
    input.creditsRefill !== undefined &&
    JSON.stringify(input.creditsRefill) !== JSON.stringify(key.creditsRefill ?? null)
  ) {
    changes.creditsRefill = input.creditsRefill;
  }
  return changes;
}

export const AccessFacts: FC<{ keyRow: ApiKeyRow; remaining: number | null }> = ({
  keyRow: key,
  remaining,
}) => (
  <>
    <dt>Rate limits</dt>
    <dd>
      {key.ratelimits && key.ratelimits.length > 0 ? (
        <ul class="plain">
          {key.ratelimits.map((limit) => (
            <li>
              <code>{limit.name}</code> {limit.limit.toLocaleString("en-US")} per{" "}
              {windowLabel(limit.durationMs)}
            </li>
          ))}
        </ul>
      ) : (
        <span class="faint">None</span>
      )}
    </dd>
    <dt>Credits</dt>
    <dd>
      {key.creditsRemaining === null ? (
        <span class="faint">Unlimited</span>
      ) : (
        <>
          {(remaining ?? key.creditsRemaining).toLocaleString("en-US")} remaining
          {key.creditsRefill ? (
            <span class="muted">
              {" "}
              · refilled to {key.creditsRefill.amount.toLocaleString("en-US")}{" "}
              {key.creditsRefill.interval === "daily"
                ? "every day"
                : `on day ${key.creditsRefill.day ?? 1} of each month`}
            </span>
          ) : null}
        </>
      )}
    </dd>
  </>
);

export const AccessForm: FC<{ keyRow: ApiKeyRow; values: FormValues; errors: FieldErrors }> = ({
  keyRow,
  values,
  errors,
}) => {
  const rows = Math.min(MAX_LIMITS, (keyRow.ratelimits?.length ?? 0) + 1);
  const shown = Math.max(
    rows,
    ...Array.from({ length: MAX_LIMITS }, (_, i) =>
      values[`rl_name_${i}`] || values[`rl_limit_${i}`] ? i + 1 : 0,
    ),
  );
  return (
    <form class="stack" method="post" action={`${BASE}/keys/${keyRow.id}/access`}>
      <FormError errors={errors} />
      <label class="choice">
        <input type="checkbox" name="enabled" checked={values.enabled === "on"} />
        <span>
          Enabled
          <small>A disabled key answers DISABLED until it is enabled again.</small>
        </span>
      </label>
      <fieldset>
        <legend class="legend">Rate limits</legend>
        <p class="hint muted">
          Fixed windows: never more than the limit in one window. Leave a row empty to remove it.
        </p>
        {errors.ratelimits ? <span class="error">{errors.ratelimits}</span> : null}
        {Array.from({ length: shown }, (_, i) => (
          <div class="row limits">
            <Field id={`rl_name_${i}`} label="Name" errors={errors}>
              <input
                type="text"
                {...described(`rl_name_${i}`, errors)}
                value={values[`rl_name_${i}`] ?? ""}
                autocomplete="off"
                spellcheck={false}
              />
            </Field>
            <Field id={`rl_limit_${i}`} label="Limit" errors={errors}>
              <input
                type="number"
                min={1}
                max={1_000_000}
                inputmode="numeric"
                {...described(`rl_limit_${i}`, errors)}
                value={values[`rl_limit_${i}`] ?? ""}
              />
            </Field>
            <Field id={`rl_window_${i}`} label="Per" errors={errors}>
              <select {...described(`rl_window_${i}`, errors)}>
                {WINDOWS.map((w) => (
                  <option
                    value={String(w.seconds)}
                    selected={(values[`rl_window_${i}`] ?? "60") === String(w.seconds)}
                  >
                    {w.label}
                  </option>
                ))}
              </select>
            </Field>
          </div>
        ))}
      </fieldset>
      <fieldset>
        <legend class="legend">Credits</legend>
        {errors.credits ? <span class="error">{errors.credits}</span> : null}
        <div class="row">
          <Field
            id="credits_remaining"
            label="Remaining"
            hint="Empty: unlimited. Each verification spends its cost."
            errors={errors}
          >
            <input
              type="number"
              min={0}
              inputmode="numeric"
              {...described("credits_remaining", errors, true)}
              value={values.credits_remaining ?? ""}
            />
            <input
              type="hidden"
              name="credits_remaining_shown"
              value={values.credits_remaining_shown ?? ""}
            />
          </Field>
          <Field id="refill_interval" label="Refill" errors={errors}>
            <select {...described("refill_interval", errors)}>
              <option value="" selected={!values.refill_interval}>
                Never
              </option>
              <option value="daily" selected={values.refill_interval === "daily"}>
                Daily (00:00 UTC)
              </option>
              <option value="monthly" selected={values.refill_interval === "monthly"}>
                Monthly
              </option>
            </select>
          </Field>
        </div>
        <div class="row">
          <Field id="refill_amount" label="Refill to" errors={errors}>
            <input
              type="number"
              min={1}
              inputmode="numeric"
              {...described("refill_amount", errors)}
              value={values.refill_amount ?? ""}
            />
          </Field>
          <Field
            id="refill_day"
            label="Day of the month"
            hint="Monthly only; default 1."
            errors={errors}
          >
            <input
              type="number"
              min={1}
              max={31}
              inputmode="numeric"
              {...described("refill_day", errors, true)}
              value={values.refill_day ?? ""}
            />
          </Field>
        </div>
      </fieldset>
      <div class="form-foot">
        <button class="btn primary" type="submit">
          Save access
        </button>
      </div>
    </form>
  );
};
