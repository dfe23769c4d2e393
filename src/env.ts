import type { KeyUsage } from "./durable/key-usage";

/** The Worker's bindings, vars and secrets, in one typed place. */
export interface Env {
  DB: D1Database;
  /** Verification records by key hash: the edge tier between the isolate cache and D1. */
  KEY_CACHE: KVNamespace;
  /** Limits and credits: one KeyUsage object per key lineage (`idFromName(lineageId)`). */
  KEY_USAGE: DurableObjectNamespace<KeyUsage>;
  /** Management requests per caller (wrangler.toml `[[ratelimits]]`); absent = unlimited. */
  MANAGEMENT_RATE_LIMITER?: RateLimit;
  /** Static files: the API reference page's script bundle. */
  ASSETS?: Fetcher;
  /** Default key prefix for new projects and org-scoped keys (`capy`). */
  KEY_PREFIX?: string;
  /** Clerk's RSA public key (PEM): session tokens are verified with it, networkless. */
  CLERK_JWT_KEY?: string;
  /** Clerk secret key: JWKS look-up in production when no CLERK_JWT_KEY is set. */
  CLERK_SECRET_KEY?: string;
  /** Comma-separated allowed `azp` origins of session tokens. */
  CLERK_AUTHORIZED_PARTIES?: string;
  /** 32 random bytes, base64: AES-GCM key for webhook secrets and queued webhook keys. */
  ENCRYPTION_KEY?: string;
}
