// Instants: Keygate keeps them as ms since the epoch and shows them as RFC 3339 UTC strings.

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** An instant as the API shows it (RFC 3339, UTC, ms); absent stays null. */
export function iso(ms: number): string;
export function iso(ms: number | null): string | null;
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
