// Verifications over time, by outcome: a uPlot chart drawn from data attributes (no inline
// script), with the same numbers as a table for screen readers and an empty state.
import type { FC } from "hono/jsx";
import { assetUrl } from "./assets";
import { BASE, Empty, formatInstant } from "./layout";

export interface ChartBucket {
  start: string;
  total: number;
  counts: Record<string, number>;
}

export interface ChartData {
  granularity: "minute" | "hour" | "day";
  buckets: ChartBucket[];
}

export const RANGES = {
  "1h": { label: "Last hour", granularity: "minute", span: 60 * 60_000 },
  "24h": { label: "Last 24 hours", granularity: "hour", span: 24 * 3_600_000 },
  "30d": { label: "Last 30 days", granularity: "day", span: 30 * 86_400_000 },
} as const;
export type RangeName = keyof typeof RANGES;

export const rangeOf = (value: string | undefined): RangeName =>
  value !== undefined && Object.hasOwn(RANGES, value) ? (value as RangeName) : "24h";

/** The analytics query of a range ending now. */
export const rangeQuery = (range: RangeName, now: number) => ({
  start: now - RANGES[range].span,
  end: now,
  granularity: RANGES[range].granularity,
});

/** Outcomes in the order a reader scans them: success first, then each refusal. */
const CODE_ORDER = [
  "VALID",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
  "INSUFFICIENT_SCOPE",
  "WRONG_PROJECT",
  "IP_NOT_ALLOWED",
  "DISABLED",
  "EXPIRED",
  "REVOKED",
];

export function totalsByCode(data: ChartData): [string, number][] {
  const totals = new Map<string, number>();
  for (const bucket of data.buckets) {
    for (const [code, n] of Object.entries(bucket.counts)) {
      totals.set(code, (totals.get(code) ?? 0) + n);
    }
  }
  const rank = (code: string) => {
    const i = CODE_ORDER.indexOf(code);
    return i === -1 ? CODE_ORDER.length : i;
  };
  return [...totals].sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]));
}

export const VerificationChart: FC<{
  data: ChartData;
  range: RangeName;
  /** The page the range links point to. */
  path: string;
  what: "key" | "project" | "identity";
  start: number;
  end: number;
  /** The project's (or identity's) most verified keys over the range. */
  topKeys?: { key_id: string; name: string; total: number }[];
}> = ({ data, range, path, what, start, end, topKeys }) => {
  const totals = totalsByCode(data);
  const total = totals.reduce((sum, [, n]) => sum + n, 0);
  return (
    <div class="card">
      <div class="chart-head">
        <h2>Verifications</h2>
        <nav class="segmented" aria-label="Time range">
          {(Object.keys(RANGES) as RangeName[]).map((name) => (
            <a href={`${path}?range=${name}`} aria-current={name === range ? "page" : undefined}>
              {RANGES[name].label}
            </a>
          ))}
        </nav>
      </div>
      {total === 0 ? (
        <div class="chart-empty">
          <Empty title={`No verifications in the ${RANGES[range].label.toLowerCase()}`}>
            <p>
              When {what === "key" ? "this key is" : `this ${what}'s keys are`} verified, the count
              of each outcome (valid, revoked, expired, …) appears here within a minute.
            </p>
          </Empty>
        </div>
      ) : (
        <>
          <p class="chart-total">
            <strong data-testid="verification-total">{total}</strong>{" "}
            {total === 1 ? "verification" : "verifications"} ·{" "}
            {totals.map(([code, n], i) => (
              <>
                {i > 0 ? ", " : ""}
                <span class={`code code-${code.toLowerCase()}`}>{code}</span> {n}
              </>
            ))}
          </p>
          <div
            class="chart"
            role="img"
            aria-label={`Verifications per ${data.granularity} by outcome, ${formatInstant(start)} to ${formatInstant(end)}`}
            data-chart={JSON.stringify({
              granularity: data.granularity,
              start,
              end,
              buckets: data.buckets,
            })}
          />
          {topKeys && topKeys.length > 0 ? (
            <div class="top-keys">
              <h3>Most verified keys</h3>
              <ol>
                {topKeys.map((k) => (
                  <li>
                    <a href={`${BASE}/keys/${k.key_id}`}>{k.name}</a>{" "}
                    <span class="muted">{k.total}</span>
                  </li>
                ))}
              </ol>
            </div>
          ) : null}
        </>
      )}
    </div>
  );
};

/** The stylesheet and script of the chart: only on pages that have one. */
export const ChartAssets: FC = () => (
  <>
    <link rel="stylesheet" href={assetUrl("uplot.css")} />
    <script src={assetUrl("uplot.js")} defer />
    <script src={assetUrl("chart.js")} defer />
  </>
);
