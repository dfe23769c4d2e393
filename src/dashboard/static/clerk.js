// Clerk's sign-in, loaded only when CLERK_PUBLISHABLE_KEY is set: Clerk keeps `__session`
// fresh on every page; the sign-in page mounts Clerk's form, then returns to the dashboard.
window.addEventListener("load", async () => {
  if (!window.Clerk) return;
  await window.Clerk.load();
  const clerk = window.Clerk;
  const signIn = document.getElementById("clerk-sign-in");
  if (signIn) {
    const next = signIn.getAttribute("data-next") || "/dashboard";
    if (clerk.user && clerk.organization) {
      location.replace(next);
      return;
    }
    if (clerk.user)
      clerk.mountOrganizationList(signIn, { afterSelectOrganizationUrl: next, hidePersonal: true });
    else clerk.mountSignIn(signIn, { forceRedirectUrl: location.href });
  }
  for (const form of document.querySelectorAll("form[data-sign-out]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await clerk.signOut();
      form.submit();
    });
  }
});
