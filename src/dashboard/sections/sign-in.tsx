// Signing in and out: Clerk's sign-in in production, the development sign-in when enabled.
import { z } from "@hono/zod-openapi";
import { isDomainError } from "../../core/errors";
import { fields, form } from "../forms";
import { clerkOf, devSignInEnabled, notFoundPage, safeNext, section } from "../frame";
import { BASE, type FieldErrors } from "../layout";
import { DevSignInForm, SignInCard } from "../pages";
import {
  clearSessionCookie,
  mintDevSession,
  principalOfSession,
  sessionPrincipal,
  setSessionCookie,
} from "../session";

export const signIn = section();

signIn.get("/", (c) => c.redirect(`${BASE}/projects`, 302));

signIn.get("/sign-in", async (c) => {
  const next = safeNext(c.req.query("next"));
  let message: string | null = null;
  try {
    if (await sessionPrincipal(c.var.core, c)) return c.redirect(next, 302);
  } catch (error) {
    if (!isDomainError(error, "forbidden")) throw error;
    message = error.message;
  }
  return c.render(
    <SignInCard
      clerk={clerkOf(c.env) !== null}
      devSignIn={devSignInEnabled(c.env)}
      next={next}
      message={message}
    />,
    { title: "Sign in" },
  );
});

signIn.get("/dev-sign-in", (c) => {
  if (!devSignInEnabled(c.env)) return notFoundPage(c);
  return c.render(
    <DevSignInForm
      values={{}}
      errors={{}}
      canMint={Boolean(c.env.DEV_SIGNING_KEY)}
      next={safeNext(c.req.query("next"))}
    />,
    { title: "Development sign-in" },
  );
});

const handle = fields.text.refine((value) => /^[A-Za-z0-9_-]{1,64}$/.test(value), {
  message: "Use 1–64 letters, digits, _ or -.",
});

/** Who to sign in as, with DEV_SIGNING_KEY (without, the form is a pasted `token`). */
const DevSignInFormSchema = z.object({
  org: handle,
  user: handle,
  role: fields.choice(["admin", "member"], "admin").catch("admin"),
});

signIn.post("/dev-sign-in", form(DevSignInFormSchema), async (c) => {
  if (!devSignInEnabled(c.env)) return notFoundPage(c);
  const submitted = c.req.valid("form");
  const { values } = submitted;
  const next = safeNext(values.next);
  const canMint = Boolean(c.env.DEV_SIGNING_KEY);
  const errors: FieldErrors = {};
  let token = (values.token ?? "").trim();
  if (canMint) {
    if (submitted.ok) {
      const { org, user, role } = submitted.data;
      token = await mintDevSession(
        c.env.DEV_SIGNING_KEY as string,
        { organizationId: org, userId: user, role, azp: new URL(c.req.url).origin },
        Date.now(),
      );
    } else {
      Object.assign(errors, submitted.errors);
    }
  } else if (token === "") {
    errors.token = "Paste a session token.";
  }
  if (Object.keys(errors).length === 0) {
    // The cookie is only set once the token passes the very check every page makes.
    const principal = await principalOfSession(c.var.core, token).catch(() => null);
    if (principal) {
      setSessionCookie(c, token);
      return c.redirect(next, 303);
    }
    errors[canMint ? "_" : "token"] = canMint
      ? "DEV_SIGNING_KEY does not match CLERK_JWT_KEY: delete .dev.vars and run npm start again."
      : "This token is not a valid session for this service (expired, or signed with another key).";
  }
  return c.render(<DevSignInForm values={values} errors={errors} canMint={canMint} next={next} />, {
    title: "Development sign-in",
  });
});

signIn.post("/sign-out", (c) => {
  clearSessionCookie(c);
  return c.redirect(`${BASE}/sign-in`, 303);
});
