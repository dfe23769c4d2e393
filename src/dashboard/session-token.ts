// The one minter of Clerk-shaped session tokens (RS256, jose): the dashboard's development
// sign-in, `npm run token` (scripts/token.mjs imports this file) and the tests all sign with
// it, so each token goes through the very verification a real Clerk session does. Plain
// TypeScript with one import, so Node runs it as it is.
import { importPKCS8, SignJWT } from "jose";

export interface SessionClaims {
  /** The active organization (claim `o.id`, or `org_id` in v1); null = none chosen. */
  organizationId: string | null;
  userId: string;
  role: "admin" | "member";
  /** Session token v2 (`o: { id, rol, slg }`, the default) or v1 (`org_id`, `org_role`). */
  version?: 1 | 2;
  /** The origin the token is for (Clerk checks it against CLERK_AUTHORIZED_PARTIES). */
  azp?: string | undefined;
  /** Further claims, e.g. `sts: "pending"`. */
  extra?: Record<string, unknown> | undefined;
}

export interface MintOptions {
  nowMs: number;
  /** Seconds until it expires; negative for an already expired token. */
  ttlSeconds: number;
  issuer?: string;
  keyId?: string;
}

export async function mintSessionToken(
  privateKeyPem: string,
  claims: SessionClaims,
  options: MintOptions,
): Promise<string> {
  const now = Math.floor(options.nowMs / 1000);
  const payload: Record<string, unknown> = {
    sid: `sess_${crypto.randomUUID().replaceAll("-", "")}`,
    v: claims.version ?? 2,
  };
  const org = claims.organizationId;
  if (org !== null) {
    if ((claims.version ?? 2) === 2) payload.o = { id: org, rol: claims.role, slg: org };
    else Object.assign(payload, { org_id: org, org_role: `org:${claims.role}` });
  }
  if (claims.azp) payload.azp = claims.azp;
  Object.assign(payload, claims.extra);
  // Secrets in .dev.vars may carry the PEM's line breaks as `\n`.
  const key = await importPKCS8(privateKeyPem.replace(/\\n/g, "\n"), "RS256");
  return new SignJWT(payload)
    .setProtectedHeader({ alg: "RS256", kid: options.keyId ?? "ins_dev", typ: "JWT" })
    .setSubject(claims.userId)
    .setIssuer(options.issuer ?? "https://clerk.keygate.local")
    .setIssuedAt(now)
    .setNotBefore(now - 5)
    .setExpirationTime(now + options.ttlSeconds)
    .sign(key);
}
