// A create form, submitted once. A reload of the page a POST rendered (or a double click)
// posts the same form again; for the forms that create something that must not create it
// twice. Each such form carries a token minted when it was rendered (`SUBMISSION_FIELD`), and
// its POST takes that token as an idempotency key (the API's store, core/idempotency.ts): the
// first submission runs; another with the same token and the same fields is sent to what the
// first created, by a redirect. What is kept is that address, never the page: the page of a
// new key holds its secret, which is shown once and stored nowhere.
import type { Core } from "../core/context";
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  releaseIdempotencyKey,
} from "../core/idempotency";
import type { Principal } from "../core/principal";
import type { FormValues } from "./forms";

/** The hidden field that carries a form's token. */
export const SUBMISSION_FIELD = "submission";

const TOKEN = /^[0-9a-f-]{36}$/;

/** A rendered form's token: the one it was posted with (a re-render with errors) or a new one. */
export const submissionToken = (values: FormValues) => {
  const posted = values[SUBMISSION_FIELD];
  return posted !== undefined && TOKEN.test(posted) ? posted : crypto.randomUUID();
};

/** The form's values with its token dropped: rendered again, it gets a new one. */
export function withoutToken(values: FormValues): FormValues {
  const { [SUBMISSION_FIELD]: _token, ...rest } = values;
  return rest;
}

export type FormOutcome =
  /** Created: the page to show now, and where a repeat of this submission is sent. */
  | { created: Response; location: string }
  /** Nothing was created (the page shows why): the same token may be submitted again. */
  | { refused: Response };

export interface OnceOptions {
  /** Runs the form: called at most once per token and fields. */
  submit: () => Promise<FormOutcome>;
  /**
   * The form again, with a form-level message, when its token cannot be used: another
   * submission with it is still running, or it was used with other fields (the browser's
   * Back restored an old form and its fields were changed).
   */
  again: (message: string) => Response | Promise<Response>;
  /** The notice (dashboard `?notice=`) a repeat is redirected with. */
  repeatNotice: string;
}

export async function submitOnce(
  core: Core,
  principal: Principal,
  form: { path: string; values: FormValues },
  options: OnceOptions,
): Promise<Response> {
  const token = form.values[SUBMISSION_FIELD];
  // A post without a token (a form of an older page, a script): it runs as it is.
  if (token === undefined || !TOKEN.test(token)) return unwrap(await options.submit());
  const claim = await claimIdempotencyKey(core, principal, `dashboard-form:${token}`, {
    method: "POST",
    path: form.path,
    body: JSON.stringify(Object.entries(form.values).sort(([a], [b]) => (a < b ? -1 : 1))),
  });
  if (claim.kind === "replay") {
    const location = claim.response.headers.location ?? "";
    const separator = location.includes("?") ? "&" : "?";
    return seeOther(`${location}${separator}notice=${options.repeatNotice}`);
  }
  if (claim.kind === "running") {
    return options.again("This form is being submitted already. Reload in a moment to see it.");
  }
  if (claim.kind === "mismatch") {
    return options.again(
      "This form was submitted before with other values. Check them and submit again.",
    );
  }
  let outcome: FormOutcome;
  try {
    outcome = await options.submit();
  } catch (error) {
    await releaseIdempotencyKey(core, claim).catch(() => {});
    throw error;
  }
  if ("refused" in outcome) {
    await releaseIdempotencyKey(core, claim);
    return outcome.refused;
  }
  await completeIdempotencyKey(core, claim, {
    status: 303,
    headers: { location: outcome.location },
    body: "",
  });
  return outcome.created;
}

const unwrap = (outcome: FormOutcome) => ("refused" in outcome ? outcome.refused : outcome.created);

const seeOther = (location: string) =>
  new Response(null, { status: 303, headers: { location, "cache-control": "no-store" } });
