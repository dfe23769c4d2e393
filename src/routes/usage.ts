// Keygate's own: the usage export for billing (SPEC Part 3 "Identities"), as JSON or CSV.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { accepts } from "hono/accepts";
import { MAX_SLOTS } from "../core/analytics/queries";
import {
  USAGE_GRANULARITIES,
  USAGE_GROUPS,
  type UsageExport,
  usageExport,
} from "../core/analytics/usage";
import { bearerSecurity, requireAuth } from "../http/auth";
import { toCsv } from "../http/csv";
import { errorResponses } from "../http/openapi";
import type { AppEnv } from "../http/router";
import { IdSchema, InstantSchema, toMs } from "../schemas/fields";
import { RangeQuerySchema } from "./verifications";

const UsageSchema = z
  .object({
    granularity: z.enum(USAGE_GRANULARITIES),
    group_by: z.enum(USAGE_GROUPS),
    rows: z.array(
      z.object({
        start: InstantSchema,
        group: z.string().nullable().openapi({
          description:
            "The keys' `external_id` (null: keys without one) or the key id, by `group_by`.",
        }),
        total: z.number().int(),
        counts: z
          .record(z.string(), z.number().int())
          .openapi({ description: "Verifications per code; codes with none are omitted." }),
      }),
    ),
  })
  .openapi("UsageExport");

const CSV_HEADER = ["start", "group", "code", "count"];

const route = createRoute({
  method: "get",
  path: "/v1/usage",
  tags: ["Analytics"],
  summary: "Usage export for billing",
  description: `Verifications of genuine keys per UTC hour or day, grouped by the keys' current \`external_id\` (keys without one under \`group: null\`) or by key; rows by start, then group, empty ones omitted. Only the keys within the caller's reach: a project-scoped key sees its own project's keys. At most ${MAX_SLOTS} buckets fit in the range (400 beyond). With \`Accept: text/csv\`: CSV (RFC 4180, CRLF) with the header \`start,group,code,count\`, one line per start, group and code with a count; a \`group\` that starts with \`=\`, \`+\`, \`-\`, \`@\`, a tab or a carriage return gets a \`'\` in front, so a spreadsheet shows it as text. Needs \`keys:read\` (or a Clerk user of the organization).`,
  security: bearerSecurity,
  middleware: requireAuth,
  request: {
    query: RangeQuerySchema.extend({
      granularity: z
        .enum(USAGE_GRANULARITIES)
        .optional()
        .openapi({ description: "Bucket size (default `hour`)." }),
      group_by: z
        .enum(USAGE_GROUPS)
        .optional()
        .openapi({ description: "Group rows by owner (default `external_id`) or by key." }),
      project_id: IdSchema.optional().openapi({ description: "Only this project's keys." }),
    }),
  },
  responses: {
    200: {
      description: "Counts, as JSON or (with `Accept: text/csv`) as CSV.",
      content: {
        "application/json": { schema: UsageSchema },
        "text/csv": {
          schema: z.string().openapi({ example: "start,group,code,count\r\n" }),
        },
      },
    },
    ...errorResponses,
  },
});

const csvOf = (usage: UsageExport) =>
  toCsv(
    CSV_HEADER,
    usage.rows.flatMap((row) =>
      Object.entries(row.counts).map(([code, count]) => [row.start, row.group, code, count]),
    ),
  );

export function registerUsage(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, async (c) => {
    const query = c.req.valid("query");
    const usage = await usageExport(c.var.core, c.var.principal, {
      start: toMs(query.start) ?? undefined,
      end: toMs(query.end) ?? undefined,
      granularity: query.granularity,
      groupBy: query.group_by,
      projectId: query.project_id,
    });
    const type = accepts(c, {
      header: "Accept",
      supports: ["application/json", "text/csv"],
      default: "application/json",
    });
    if (type === "text/csv") {
      return c.body(csvOf(usage), 200, {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": 'attachment; filename="keygate-usage.csv"',
      });
    }
    return c.json(usage, 200);
  });
}
