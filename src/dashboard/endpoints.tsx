// A project's webhook endpoints in the dashboard: the list, the create and edit forms and their
// schemas (SPEC Part 3 "Key lifecycle events"). The routes are in sections/webhooks.tsx.
import { z } from "@hono/zod-openapi";
import type { FC } from "hono/jsx";
import { ALL_EVENTS, KEY_EVENT_TYPES } from "../core/event-types";
import type { ProjectRow, WebhookEndpointRow } from "../db/schema";
import { DescriptionSchema, WebhookUrlSchema } from "../schemas/fields";
import { type FormValues, fields } from "./forms";
import { BASE, Chips, described, Empty, Field, type FieldErrors, FormError, Time } from "./layout";
import { SUBMISSION_FIELD, submissionToken } from "./once";

/** The checkbox of one event type; "all events" is `all_events`. */
const eventField = (type: string) => `event_${type}`;

const EndpointFieldsSchema = z.object({
  url: fields.text.pipe(z.string().min(1, "Enter the URL to deliver to.").pipe(WebhookUrlSchema)),
  description: fields.text
    .transform((value) => (value === "" ? null : value))
    .pipe(DescriptionSchema.nullable()),
});

/** The endpoint form: its URL, description and the ticked events (`["*"]` for all). */
export const EndpointFormSchema = z.custom<FormValues>().transform((values, ctx) => {
  const parsed = EndpointFieldsSchema.safeParse(values);
  for (const issue of parsed.error?.issues ?? []) {
    ctx.addIssue({ code: "custom", path: issue.path, message: issue.message });
  }
  const events =
    values.all_events === "on"
      ? [ALL_EVENTS]
      : KEY_EVENT_TYPES.filter((type) => values[eventField(type)] === "on");
  if (events.length === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["events"],
      message: "Choose at least one event, or all events.",
    });
  }
  if (!parsed.success || events.length === 0) return z.NEVER;
  return { ...parsed.data, events, enabled: values.enabled === "on" };
});

/** The enable/disable button of a row. */
export const ToggleFormSchema = z.object({ enabled: fields.choice(["true", "false"], "true") });

/** An endpoint's fields as the form shows them. */
export const endpointValues = (endpoint: WebhookEndpointRow): FormValues => ({
  url: endpoint.url,
  description: endpoint.description ?? "",
  ...(endpoint.enabled ? { enabled: "on" } : {}),
  ...Object.fromEntries(
    endpoint.events.map((type) => [type === ALL_EVENTS ? "all_events" : eventField(type), "on"]),
  ),
});

const endpointPath = (project: ProjectRow, endpoint: WebhookEndpointRow) =>
  `${BASE}/projects/${project.id}/webhooks/endpoints/${endpoint.id}`;

/** What an endpoint receives, in words. */
export const Subscriptions: FC<{ events: string[] }> = ({ events }) =>
  events.includes(ALL_EVENTS) ? <span class="badge">all events</span> : <Chips values={events} />;

export const EndpointTable: FC<{
  project: ProjectRow;
  endpoints: WebhookEndpointRow[];
  now: number;
  canChange: boolean;
}> = ({ project, endpoints, now, canChange }) =>
  endpoints.length === 0 ? (
    <Empty title="No webhook endpoints yet">
      <p>
        An endpoint receives the project's key events (created, revoked, rotated, leaked, …), signed
        with the project's secret.
      </p>
    </Empty>
  ) : (
    <table class="list">
      <thead>
        <tr>
          <th scope="col">Endpoint</th>
          <th scope="col">Events</th>
          <th scope="col">State</th>
        </tr>
      </thead>
      <tbody>
        {endpoints.map((e) => (
          <tr id={`endpoint-${e.id}`}>
            <td class="name" data-label="Endpoint">
              <a href={endpointPath(project, e)}>{e.description ?? e.url}</a>
              <div class="sub mono">{e.url}</div>
              <div class="sub">
                added <Time ms={e.createdAt} now={now} rel />
              </div>
            </td>
            <td data-label="Events">
              <Subscriptions events={e.events} />
            </td>
            <td data-label="State">
              <span class={`badge ${e.enabled ? "ok" : "warn"}`}>
                {e.enabled ? "enabled" : "disabled"}
              </span>
              {canChange ? (
                <form
                  class="row-action"
                  method="post"
                  action={`${endpointPath(project, e)}/enabled`}
                >
                  <input type="hidden" name="enabled" value={e.enabled ? "false" : "true"} />
                  <button class="btn small" type="submit">
                    {e.enabled ? "Disable" : "Enable"}
                  </button>
                </form>
              ) : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );

/** The event checkboxes: "all events", or any of the eight. */
const EventChoices: FC<{ values: FormValues; errors: FieldErrors }> = ({ values, errors }) => (
  <fieldset id="events" aria-describedby={errors.events ? "events-error" : undefined}>
    <legend class="legend">Events</legend>
    <label class="choice">
      <input type="checkbox" name="all_events" checked={values.all_events === "on"} />
      <span>
        All events
        <small>Every key event, including types added later.</small>
      </span>
    </label>
    {KEY_EVENT_TYPES.map((type) => (
      <label class="choice">
        <input
          type="checkbox"
          name={eventField(type)}
          checked={values[eventField(type)] === "on"}
        />
        <span class="mono">{type}</span>
      </label>
    ))}
    {errors.events ? (
      <span class="error" id="events-error" role="alert">
        {errors.events}
      </span>
    ) : null}
  </fieldset>
);

const EndpointFields: FC<{ values: FormValues; errors: FieldErrors }> = ({ values, errors }) => (
  <>
    <Field
      id="url"
      label="URL"
      hint="https:// (http:// only for localhost). Receives each event, signed."
      errors={errors}
    >
      <input
        type="url"
        {...described("url", errors, true)}
        value={values.url ?? ""}
        placeholder="https://example.com/hooks/keygate"
        required
        autocomplete="off"
        spellcheck={false}
      />
    </Field>
    <Field
      id="description"
      label="Description"
      hint="Optional, up to 128 characters."
      errors={errors}
    >
      <input
        type="text"
        {...described("description", errors, true)}
        value={values.description ?? ""}
        maxlength={128}
        autocomplete="off"
      />
    </Field>
    <EventChoices values={values} errors={errors} />
  </>
);

export const NewEndpointForm: FC<{
  project: ProjectRow;
  values: FormValues;
  errors: FieldErrors;
}> = ({ project, values, errors }) => (
  <form class="stack" method="post" action={`${BASE}/projects/${project.id}/webhooks/endpoints`}>
    <FormError errors={errors} />
    <input type="hidden" name={SUBMISSION_FIELD} value={submissionToken(values)} />
    <EndpointFields values={values} errors={errors} />
    <div class="form-foot">
      <button class="btn primary" type="submit">
        Add endpoint
      </button>
    </div>
  </form>
);

export const EditEndpointForm: FC<{
  project: ProjectRow;
  endpoint: WebhookEndpointRow;
  values: FormValues;
  errors: FieldErrors;
}> = ({ project, endpoint, values, errors }) => (
  <form class="stack" method="post" action={endpointPath(project, endpoint)}>
    <FormError errors={errors} />
    <EndpointFields values={values} errors={errors} />
    <label class="choice">
      <input type="checkbox" name="enabled" checked={values.enabled === "on"} />
      <span>
        Enabled
        <small>A disabled endpoint gets no new deliveries until it is enabled again.</small>
      </span>
    </label>
    <div class="form-foot">
      <button class="btn primary" type="submit">
        Save changes
      </button>
      <a class="btn link" href={`${BASE}/projects/${project.id}/webhooks`}>
        Cancel
      </a>
    </div>
  </form>
);

export const DeleteEndpointForm: FC<{ project: ProjectRow; endpoint: WebhookEndpointRow }> = ({
  project,
  endpoint,
}) => (
  <form class="stack" method="post" action={`${endpointPath(project, endpoint)}/delete`}>
    <p class="muted">Its past deliveries stay in the project's delivery list.</p>
    <div class="form-foot">
      <button class="btn danger" type="submit">
        Delete endpoint
      </button>
    </div>
  </form>
);
