// Where the `keygate` CLI may send a secret: https anywhere, plain http only to this machine.

/** localhost (and *.localhost), 127.0.0.0/8 and ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  return (
    host === "localhost" ||
    host.endsWith(".localhost") ||
    /^127(\.\d{1,3}){3}$/.test(host) ||
    host === "::1" ||
    host === "0:0:0:0:0:0:0:1"
  );
}

/**
 * Why a token or key must not go to `url`, or null when it may: a plain-http URL is
 * readable (and changeable) on the way unless it stays on this machine.
 */
export function transportProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `${JSON.stringify(url)} is not a URL (e.g. https://keygate.example.com).`;
  }
  if (parsed.protocol === "https:") return null;
  if (parsed.protocol === "http:" && isLoopbackHost(parsed.hostname)) return null;
  if (parsed.protocol === "http:") {
    return `refusing to send a secret over plain http to ${parsed.host}: use https:// (http:// only for 127.0.0.1, ::1 or localhost).`;
  }
  return `${url} is not an http(s) URL.`;
}
