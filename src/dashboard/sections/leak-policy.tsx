// A project's leak policy (SPEC Part 3 "Leaked keys"): what a key of it reported leaked gets.

import { z } from "@hono/zod-openapi";
import type { FC } from "hono/jsx";
import { findProject, updateProject } from "../../core/projects";
import { LEAK_POLICIES, type ProjectRow } from "../../db/schema";
import { fields, form } from "../forms";
import { section } from "../frame";
import { BASE, described, Field } from "../layout";

export const leakPolicy = section();

export const LEAK_POLICY_LABELS: Record<ProjectRow["leakPolicy"], string> = {
  revoke: "Revoke it",
  disable: "Disable it (it can be enabled again)",
  notify: "Only mark it and send the event (it keeps working)",
};

/** The project page's card: the policy, and (for those who may change it) a select to change it. */
export const LeakPolicyCard: FC<{ project: ProjectRow }> = ({ project }) => (
  <div class="card">
    <h2>Leaked keys</h2>
    <form class="stack" method="post" action={`${BASE}/projects/${project.id}/leak-policy`}>
      <Field
        id="leak_policy"
        label="When one of this project's keys is reported leaked"
        hint="By GitHub secret scanning or anyone (POST /v1/leaks). Organization keys are always revoked."
      >
        <select {...described("leak_policy", undefined, true)}>
          {LEAK_POLICIES.map((policy) => (
            <option value={policy} selected={project.leakPolicy === policy}>
              {LEAK_POLICY_LABELS[policy]}
            </option>
          ))}
        </select>
      </Field>
      <div class="form-foot">
        <button class="btn" type="submit">
          Save leak policy
        </button>
      </div>
    </form>
  </div>
);

const LeakPolicyFormSchema = z.object({ leak_policy: fields.choice(LEAK_POLICIES, "revoke") });

leakPolicy.post("/:projectId/leak-policy", form(LeakPolicyFormSchema), async (c) => {
  const { core, actor } = c.var;
  const project = await findProject(core, actor.principal, c.req.param("projectId"));
  const submitted = c.req.valid("form");
  // Anything else is not a choice the form offers: the project stays as it was.
  if (submitted.ok) {
    await updateProject(core, actor, project.id, { leakPolicy: submitted.data.leak_policy });
  }
  return c.redirect(`${BASE}/projects/${project.id}?notice=leak-policy-saved`, 303);
});
