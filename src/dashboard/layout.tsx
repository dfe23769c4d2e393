// The dashboard's frame and the small pieces every page is made of. Values are rendered as
// JSX children or attributes only, so Hono escapes every one of them.
import type { Child, FC, PropsWithChildren } from "hono/jsx";
import { assetUrl } from "./assets";
import type { UserPrincipal } from "./session";

export const BASE = "/dashboard";

export interface Frame {
  title: string;
  principal?: UserPrincipal | null;
  /** Which top-level section is current. */
  section?: "projects" | "org-keys" | "identities" | "audit";
  /** Clerk's Frontend API host, when production sign-in is configured. */
  clerk?: { frontendApi: string; publishableKey: string } | null;
  /** Extra stylesheets and scripts of this page (e.g. the chart's). */
  head?: Child;
}

export const Layout: FC<PropsWithChildren<Frame>> = ({
  title,
  principal,
  section,
  clerk,
  head,
  children,
}) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="same-origin" />
      <title>{`${title} · Keygate`}</title>
      <link rel="icon" href="data:," />
      <link rel="stylesheet" href={assetUrl("app.css")} />
      <script src={assetUrl("app.js")} defer />
      {head ?? null}
      {clerk ? (
        <>
          <script
            src={`https://${clerk.frontendApi}/npm/@clerk/clerk-js@5/dist/clerk.browser.js`}
            data-clerk-publishable-key={clerk.publishableKey}
            crossorigin="anonymous"
            defer
          />
          <script src={assetUrl("clerk.js")} defer />
        </>
      ) : null}
    </head>
    <body>
      <a class="skip" href="#main">
        Skip to content
      </a>
      {principal ? <TopBar principal={principal} section={section} /> : null}
      <main id="main">{children}</main>
    </body>
  </html>
);

const TopBar: FC<{ principal: UserPrincipal; section: Frame["section"] }> = ({
  principal,
  section,
}) => (
  <header class="topbar">
    <div class="topbar-inner">
      <a class="brand" href={`${BASE}/projects`}>
        <span class="brand-mark" aria-hidden="true">
          K
        </span>
        Keygate
      </a>
      <nav class="nav" aria-label="Sections">
        <NavLink href={`${BASE}/projects`} current={section === "projects"}>
          Projects
        </NavLink>
        {principal.isAdmin ? (
          <NavLink href={`${BASE}/org-keys`} current={section === "org-keys"}>
            Organization keys
          </NavLink>
        ) : null}
        <NavLink href={`${BASE}/identities`} current={section === "identities"}>
          Identities
        </NavLink>
        <NavLink href={`${BASE}/audit`} current={section === "audit"}>
          Audit log
        </NavLink>
      </nav>
      <div class="whoami">
        <span class="org" title={`Organization ${principal.organizationId}`}>
          {principal.organizationId}
        </span>
        <span class="who" title={`Signed in as ${principal.userId}`}>
          {principal.userId}
        </span>
        <span class={principal.isAdmin ? "badge accent" : "badge"}>
          {principal.isAdmin ? "Admin" : "Member"}
        </span>
        <form method="post" action={`${BASE}/sign-out`} data-sign-out>
          <button class="btn small" type="submit">
            Sign out
          </button>
        </form>
      </div>
    </div>
  </header>
);

const NavLink: FC<PropsWithChildren<{ href: string; current: boolean }>> = ({
  href,
  current,
  children,
}) => (
  <a href={href} aria-current={current ? "page" : undefined}>
    {children}
  </a>
);

export const PageHead: FC<{
  title: Child;
  sub?: Child;
  crumbs?: { href: string; label: string }[];
  actions?: Child;
}> = ({ title, sub, crumbs, actions }) => (
  <div class="page-head">
    <div>
      {crumbs && crumbs.length > 0 ? (
        <nav class="crumbs" aria-label="Breadcrumb">
          {crumbs.map((crumb, i) => (
            <>
              {i > 0 ? " / " : ""}
              <a href={crumb.href}>{crumb.label}</a>
            </>
          ))}
        </nav>
      ) : null}
      <h1>{title}</h1>
      {sub ? <p class="sub">{sub}</p> : null}
    </div>
    {actions ? <div class="actions">{actions}</div> : null}
  </div>
);

export const Tabs: FC<{ tabs: { href: string; label: string; current: boolean }[] }> = ({
  tabs,
}) => (
  <nav class="tabs" aria-label="Project sections">
    {tabs.map((tab) => (
      <a href={tab.href} aria-current={tab.current ? "page" : undefined}>
        {tab.label}
      </a>
    ))}
  </nav>
);

export type FieldErrors = Record<string, string>;

/** A labelled control with its hint and, when the core refused it, its error right below. */
export const Field: FC<
  PropsWithChildren<{ id: string; label: string; hint?: Child; errors?: FieldErrors }>
> = ({ id, label, hint, errors, children }) => {
  const error = errors?.[id];
  return (
    <div class={error ? "field invalid" : "field"}>
      <label for={id}>{label}</label>
      {children}
      {hint ? (
        <span class="hint" id={`${id}-hint`}>
          {hint}
        </span>
      ) : null}
      {error ? (
        <span class="error" id={`${id}-error`} role="alert">
          {error}
        </span>
      ) : null}
    </div>
  );
};

/** `aria-describedby` / `aria-invalid` for the control inside a Field. */
export const described = (id: string, errors: FieldErrors | undefined, hint = false) => ({
  id,
  name: id,
  "aria-invalid": errors?.[id] ? "true" : undefined,
  "aria-describedby":
    [hint ? `${id}-hint` : null, errors?.[id] ? `${id}-error` : null].filter(Boolean).join(" ") ||
    undefined,
});

/** A form-level error (a conflict, a refusal) that belongs to no single field. */
export const FormError: FC<{ errors?: FieldErrors }> = ({ errors }) =>
  errors?._ ? (
    <div class="notice error" role="alert">
      <strong>That did not work.</strong>
      {errors._}
    </div>
  ) : null;

export const Notice: FC<PropsWithChildren<{ kind?: "ok" | "error" | "warn"; title?: string }>> = ({
  kind = "ok",
  title,
  children,
}) => (
  <div class={`notice ${kind}`} role={kind === "error" ? "alert" : "status"}>
    {title ? <strong>{title}</strong> : null}
    {children}
  </div>
);

export const Empty: FC<PropsWithChildren<{ title: string }>> = ({ title, children }) => (
  <div class="empty">
    <strong>{title}</strong>
    {children}
  </div>
);

const pad = (n: number) => String(n).padStart(2, "0");

/** `2026-12-01 10:20 UTC`: the dashboard speaks UTC, like the API. */
export function formatInstant(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

export function relative(ms: number, now: number): string {
  const seconds = Math.round((now - ms) / 1000);
  const future = seconds < 0;
  const s = Math.abs(seconds);
  const [n, unit] =
    s < 60
      ? [s, "second"]
      : s < 3600
        ? [Math.floor(s / 60), "minute"]
        : s < 86_400
          ? [Math.floor(s / 3600), "hour"]
          : [Math.floor(s / 86_400), "day"];
  if (s < 10) return future ? "in a few seconds" : "just now";
  const text = `${n} ${unit}${n === 1 ? "" : "s"}`;
  return future ? `in ${text}` : `${text} ago`;
}

export const Time: FC<{ ms: number | null; now: number; rel?: boolean; never?: string }> = ({
  ms,
  now,
  rel,
  never = "—",
}) =>
  ms === null ? (
    <span class="faint">{never}</span>
  ) : (
    <time datetime={new Date(ms).toISOString()} title={formatInstant(ms)}>
      {rel ? relative(ms, now) : formatInstant(ms)}
    </time>
  );

export const Chips: FC<{ values: string[]; none?: string }> = ({ values, none = "none" }) =>
  values.length === 0 ? (
    <span class="faint">{none}</span>
  ) : (
    <span class="chips">
      {values.map((value) => (
        <span class="chip">{value}</span>
      ))}
    </span>
  );

/** The plaintext of a new key: shown once, with a copy button and a plain warning. */
export const SecretReveal: FC<{ id: string; value: string; what: string }> = ({
  id,
  value,
  what,
}) => (
  <div class="card">
    <Notice kind="warn" title={`Copy ${what} now. It will not be shown again.`}>
      Keygate stores only a hash of it. If you lose it, rotate the key to get a new one.
    </Notice>
    <div class="secret">
      <code id={id}>{value}</code>
      <button class="btn primary" type="button" data-copy={id} hidden>
        Copy
      </button>
    </div>
  </div>
);

export const Pager: FC<{ next: string | null; first?: string | null; count: number }> = ({
  next,
  first,
  count,
}) =>
  next || first ? (
    <div class="pager">
      <span>
        {count} {count === 1 ? "row" : "rows"} on this page
      </span>
      <span class="actions">
        {first ? (
          <a class="btn small" href={first}>
            First page
          </a>
        ) : null}
        {next ? (
          <a class="btn small" href={next} rel="next">
            Next page
          </a>
        ) : null}
      </span>
    </div>
  ) : null;
