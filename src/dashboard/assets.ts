// The dashboard's stylesheet and its few lines of script, served by the Worker itself
// (CSP `'self'`: no inline code, no CDN).

export const STYLES = `
:root {
  --bg: #f6f7f9; --surface: #fff; --border: #e2e5ea; --border-strong: #c9ced6;
  --text: #1b2230; --muted: #5d6676; --faint: #8a93a3;
  --accent: #3b4fd8; --accent-strong: #2f3fb0; --accent-soft: #eef0fd;
  --danger: #c0362c; --danger-soft: #fdeeed; --ok: #1f7a43; --ok-soft: #e7f5ed;
  --warn: #8a5a00; --warn-soft: #fdf4e1; --radius: 8px;
  --mono: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
  color-scheme: light;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; border-radius: 4px; }
code, .mono { font-family: var(--mono); font-size: 0.9em; }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0; font-weight: 650; letter-spacing: -0.01em; }
h1 .badge { vertical-align: middle; margin-left: 0.35rem; }
h2 { font-size: 1.05rem; margin: 0 0 0.75rem; font-weight: 620; }
p { margin: 0 0 0.75rem; }
.skip { position: absolute; left: -999px; top: 0; background: var(--surface); padding: 0.5rem 1rem; z-index: 10; }
.skip:focus { left: 1rem; top: 0.5rem; }

.topbar { background: var(--surface); border-bottom: 1px solid var(--border); }
.topbar-inner {
  max-width: 1160px; margin: 0 auto; padding: 0 1.5rem; display: flex; align-items: center;
  gap: 1.5rem; min-height: 56px; flex-wrap: wrap;
}
.brand { display: flex; align-items: center; gap: 0.5rem; font-weight: 700; color: var(--text); font-size: 1.05rem; }
.brand:hover { text-decoration: none; }
.brand-mark {
  width: 26px; height: 26px; border-radius: 7px; background: var(--accent); color: #fff;
  display: inline-grid; place-items: center; font-size: 0.8rem; font-weight: 700;
}
.nav { display: flex; gap: 0.25rem; flex: 1; }
.nav a { color: var(--muted); padding: 0.4rem 0.7rem; border-radius: 6px; font-weight: 500; white-space: nowrap; }
.nav a:hover { background: var(--bg); color: var(--text); text-decoration: none; }
.nav a[aria-current="page"] { color: var(--accent-strong); background: var(--accent-soft); }
.whoami { display: flex; align-items: center; gap: 0.6rem; color: var(--muted); font-size: 0.85rem; }
.whoami form { margin: 0; }
.org { font-family: var(--mono); font-size: 0.8rem; color: var(--text); max-width: 16rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }

main { max-width: 1160px; margin: 0 auto; padding: 1.75rem 1.5rem 4rem; }
.page-head { display: flex; align-items: flex-end; justify-content: space-between; gap: 1rem; margin-bottom: 1.25rem; flex-wrap: wrap; }
.page-head .sub { color: var(--muted); margin: 0.25rem 0 0; }
.crumbs { font-size: 0.85rem; color: var(--muted); margin-bottom: 0.35rem; }
.crumbs a { color: var(--muted); }
.actions { display: flex; gap: 0.5rem; flex-wrap: wrap; }
.tabs { display: flex; gap: 0.25rem; border-bottom: 1px solid var(--border); margin: 0 0 1.25rem; overflow-x: auto; }
.tabs a { padding: 0.55rem 0.85rem; color: var(--muted); border-bottom: 2px solid transparent; margin-bottom: -1px; white-space: nowrap; font-weight: 500; }
.tabs a:hover { color: var(--text); text-decoration: none; }
.tabs a[aria-current="page"] { color: var(--accent-strong); border-bottom-color: var(--accent); }

.card { background: var(--surface); border: 1px solid var(--border); border-radius: var(--radius); padding: 1.25rem; margin-bottom: 1.25rem; }
.card > h2:first-child { margin-top: 0; }
.card.flush { padding: 0; overflow: hidden; }
.card.flush > h2 { padding: 1rem 1.25rem 0; }
.grid-2 { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.25rem; align-items: start; }
.narrow { max-width: 640px; }

.btn {
  display: inline-flex; align-items: center; justify-content: center; gap: 0.4rem; font: inherit; font-weight: 550;
  font-size: 0.9rem; padding: 0.5rem 0.95rem; border-radius: 6px; border: 1px solid var(--border-strong);
  background: var(--surface); color: var(--text); cursor: pointer; white-space: nowrap; line-height: 1.3;
}
.btn:hover { background: var(--bg); text-decoration: none; }
.btn.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
.btn.primary:hover { background: var(--accent-strong); }
.btn.danger { background: var(--danger); border-color: var(--danger); color: #fff; }
.btn.danger:hover { background: #a32c23; }
.btn.danger-quiet { color: var(--danger); }
.btn.small { padding: 0.3rem 0.65rem; font-size: 0.82rem; }
.btn.link { border: none; background: none; color: var(--muted); padding: 0.3rem 0.4rem; }
.btn.link:hover { color: var(--text); background: none; text-decoration: underline; }

form.stack { display: grid; gap: 1rem; }
.field { display: grid; gap: 0.3rem; }
.field label, .legend { font-weight: 570; font-size: 0.9rem; }
.field .hint { color: var(--muted); font-size: 0.82rem; }
.field input[type="text"], .field input[type="url"], .field input[type="number"],
.field input[type="datetime-local"], .field select, .field textarea {
  font: inherit; font-size: 0.95rem; padding: 0.5rem 0.65rem; border: 1px solid var(--border-strong);
  border-radius: 6px; background: var(--surface); color: var(--text); width: 100%; min-width: 0;
}
.field textarea { font-family: var(--mono); font-size: 0.82rem; min-height: 6rem; }
.field input:focus, .field select:focus, .field textarea:focus { outline: 2px solid var(--accent-soft); border-color: var(--accent); }
.field.invalid input, .field.invalid select, .field.invalid textarea { border-color: var(--danger); }
.field .error { color: var(--danger); font-size: 0.85rem; font-weight: 500; }
.field { align-content: start; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 1rem; align-items: start; }
.row.wide-last { grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); }
.field select, .field input:not([type="radio"]):not([type="checkbox"]) { height: 2.6rem; }
fieldset { border: 1px solid var(--border); border-radius: var(--radius); padding: 0.75rem 1rem 1rem; margin: 0; }
fieldset legend { padding: 0 0.35rem; }
.choice { display: flex; gap: 0.6rem; align-items: flex-start; padding: 0.45rem 0; }
.choice input { margin-top: 0.3rem; accent-color: var(--accent); }
.choice span small { display: block; color: var(--muted); }
.form-foot { display: flex; gap: 0.5rem; align-items: center; flex-wrap: wrap; }

table.list { width: 100%; border-collapse: collapse; font-size: 0.9rem; }
table.list th { text-align: left; font-weight: 600; color: var(--muted); font-size: 0.78rem; text-transform: uppercase; letter-spacing: 0.04em; padding: 0.65rem 1rem; border-bottom: 1px solid var(--border); background: #fafbfc; white-space: nowrap; }
table.list td { padding: 0.7rem 1rem; border-bottom: 1px solid var(--border); vertical-align: top; }
table.list tr:last-child td { border-bottom: none; }
table.list td.name a { font-weight: 600; }
table.list td .sub { color: var(--muted); font-size: 0.82rem; }
.nowrap { white-space: nowrap; }
.muted { color: var(--muted); }
.faint { color: var(--faint); }

.badge { display: inline-block; font-size: 0.76rem; font-weight: 600; padding: 0.12rem 0.5rem; border-radius: 999px; background: var(--bg); color: var(--muted); border: 1px solid var(--border); white-space: nowrap; }
.badge.ok { background: var(--ok-soft); color: var(--ok); border-color: #bfe3cc; }
.badge.danger { background: var(--danger-soft); color: var(--danger); border-color: #f3c5c1; }
.badge.warn { background: var(--warn-soft); color: var(--warn); border-color: #f0dcae; }
.badge.accent { background: var(--accent-soft); color: var(--accent-strong); border-color: #d3d8fb; }
.chips { display: flex; flex-wrap: wrap; gap: 0.3rem; }
.chip { font-family: var(--mono); font-size: 0.76rem; padding: 0.08rem 0.45rem; border-radius: 4px; background: #f0f2f5; color: var(--text); border: 1px solid var(--border); }

dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.55rem 1.25rem; margin: 0; font-size: 0.92rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }

.notice { border-radius: var(--radius); padding: 0.8rem 1rem; margin-bottom: 1.25rem; border: 1px solid; }
.notice.ok { background: var(--ok-soft); border-color: #bfe3cc; color: #145730; }
.notice.error { background: var(--danger-soft); border-color: #f3c5c1; color: #8c231b; }
.notice.warn { background: var(--warn-soft); border-color: #f0dcae; color: #6b4500; }
.notice strong { display: block; margin-bottom: 0.15rem; }

.secret { display: flex; gap: 0.5rem; align-items: stretch; margin: 0.75rem 0 1rem; flex-wrap: wrap; }
.secret code {
  flex: 1 1 20rem; min-width: 0; display: block; font-size: 0.95rem; padding: 0.7rem 0.85rem; border-radius: 6px;
  background: #10172a; color: #e8ecff; overflow-wrap: anywhere; user-select: all;
}

.empty { text-align: center; padding: 2.5rem 1.25rem; color: var(--muted); }
.empty strong { display: block; color: var(--text); font-size: 1rem; margin-bottom: 0.25rem; }
.pager { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: 0.75rem 1rem; border-top: 1px solid var(--border); font-size: 0.88rem; color: var(--muted); }

.signin { max-width: 420px; margin: 8vh auto 0; }
.signin .brand { justify-content: center; margin-bottom: 1.25rem; font-size: 1.3rem; }
.signin .card { padding: 1.5rem; }
.signin h1 { margin-bottom: 0.5rem; }
details summary { cursor: pointer; color: var(--muted); font-size: 0.9rem; }
details[open] summary { margin-bottom: 0.75rem; }

.chart { width: 100%; min-height: 240px; }
.chart .u-legend { font-size: 0.8rem; color: var(--muted); }
.chart-head { display: flex; justify-content: space-between; align-items: center; gap: 0.75rem; flex-wrap: wrap; margin-bottom: 0.75rem; }
.chart-head h2 { margin: 0; }
.chart-total { color: var(--muted); font-size: 0.9rem; }
.chart-total strong { color: var(--text); font-size: 1.1rem; }
.code { font-family: var(--mono); font-size: 0.8rem; }
.code-valid { color: var(--ok); }
.row.limits { grid-template-columns: minmax(0, 2fr) minmax(0, 1fr) minmax(0, 1.2fr); margin-top: 0.5rem; }
ul.plain { margin: 0; padding: 0; list-style: none; }
.choice input[type="checkbox"] { width: 1rem; height: 1rem; }
.top-keys { margin-top: 1rem; border-top: 1px solid var(--border); padding-top: 0.75rem; }
.top-keys h3 { font-size: 0.85rem; color: var(--muted); margin: 0 0 0.4rem; font-weight: 600; }
.top-keys ol { margin: 0; padding-left: 1.25rem; display: grid; gap: 0.2rem; font-size: 0.9rem; }
.chart-empty { border: 1px dashed var(--border-strong); border-radius: var(--radius); }
.segmented { display: inline-flex; border: 1px solid var(--border-strong); border-radius: 6px; overflow: hidden; }
.segmented a { padding: 0.3rem 0.7rem; font-size: 0.82rem; color: var(--muted); border-left: 1px solid var(--border-strong); }
.segmented a:first-child { border-left: none; }
.segmented a:hover { background: var(--bg); text-decoration: none; }
.segmented a[aria-current="page"] { background: var(--accent-soft); color: var(--accent-strong); font-weight: 600; }

@media (max-width: 900px) {
  .grid-2 { grid-template-columns: minmax(0, 1fr); }
}
@media (max-width: 720px) {
  body { font-size: 15px; }
  .topbar-inner { padding: 0.5rem 1rem; gap: 0.5rem 1rem; }
  .nav { order: 3; flex-basis: 100%; overflow-x: auto; margin: 0 -0.5rem; padding-bottom: 0.25rem; }
  .whoami { margin-left: auto; }
  .whoami .org { max-width: 8rem; }
  .whoami .who { display: none; }
  main { padding: 1.25rem 1rem 3rem; }
  h1 { font-size: 1.3rem; }
  .card { padding: 1rem; }
  table.list thead { display: none; }
  table.list, table.list tbody, table.list tr, table.list td { display: block; width: 100%; }
  table.list tr { padding: 0.75rem 1rem; border-bottom: 1px solid var(--border); }
  table.list tr:last-child { border-bottom: none; }
  table.list td { border: none; padding: 0.15rem 0 0.15rem 7rem; position: relative; min-height: 1.6rem; }
  table.list td::before { content: attr(data-label); position: absolute; left: 0; top: 0.2rem; width: 6.5rem; color: var(--muted); font-size: 0.8rem; }
  table.list td.name { font-size: 1rem; padding: 0 0 0.3rem; }
  table.list td.name::before { display: none; }
  dl.facts { grid-template-columns: minmax(0, 1fr); gap: 0.1rem; }
  dl.facts dd { margin-bottom: 0.5rem; }
  .page-head .actions { width: 100%; }
  .row.wide-last { grid-template-columns: minmax(0, 1fr); }
  .row.limits { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 0.5rem 0.75rem; padding-bottom: 0.5rem; border-bottom: 1px solid var(--border); }
  .row.limits > :first-child { grid-column: 1 / -1; }
  fieldset { padding: 0.5rem 0.75rem 0.75rem; }
}
`;

/**
 * Progressive enhancement only: every page works without it. Copy buttons, and the sign-out
 * of Clerk's own session when Clerk's script is on the page.
 */
export const SCRIPT = `
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C to copy";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});
for (const button of document.querySelectorAll("[data-copy]")) button.hidden = false;
`;

/**
 * Clerk's sign-in, loaded only when CLERK_PUBLISHABLE_KEY is set: Clerk keeps `__session`
 * fresh on every page; the sign-in page mounts Clerk's form, then returns to the dashboard.
 */
export const CLERK_SCRIPT = `
window.addEventListener("load", async () => {
  if (!window.Clerk) return;
  await window.Clerk.load();
  const clerk = window.Clerk;
  const signIn = document.getElementById("clerk-sign-in");
  if (signIn) {
    const next = signIn.getAttribute("data-next") || "/dashboard";
    if (clerk.user && clerk.organization) { location.replace(next); return; }
    if (clerk.user) clerk.mountOrganizationList(signIn, { afterSelectOrganizationUrl: next, hidePersonal: true });
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
`;

/** Draws each `[data-chart]` with uPlot: one line per outcome, empty slots as zeros, in UTC. */
export const CHART_SCRIPT = `
(() => {
  const COLORS = {
    VALID: "#1f7a43", REVOKED: "#c0362c", EXPIRED: "#b35c00", DISABLED: "#6b7280",
    INSUFFICIENT_SCOPE: "#7c3aed", WRONG_PROJECT: "#0e7490", IP_NOT_ALLOWED: "#be185d",
    RATE_LIMITED: "#d97706", USAGE_EXCEEDED: "#4338ca",
  };
  const ORDER = Object.keys(COLORS);
  const STEP = { minute: 60, hour: 3600, day: 86400 };
  const INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7, 1e8, 1e9];
  for (const el of document.querySelectorAll("[data-chart]")) {
    if (!window.uPlot) return;
    const data = JSON.parse(el.getAttribute("data-chart"));
    const step = STEP[data.granularity];
    const first = Math.floor(data.start / 1000 / step) * step;
    const last = Math.ceil(data.end / 1000 / step) * step;
    const xs = [];
    for (let t = first; t < last; t += step) xs.push(t);
    const slot = new Map(xs.map((t, i) => [t, i]));
    const codes = [...new Set(data.buckets.flatMap((b) => Object.keys(b.counts)))].sort(
      (a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99),
    );
    const ys = codes.map(() => xs.map(() => 0));
    for (const bucket of data.buckets) {
      const i = slot.get(Math.floor(Date.parse(bucket.start) / 1000));
      if (i === undefined) continue;
      codes.forEach((code, c) => { ys[c][i] = bucket.counts[code] || 0; });
    }
    const axis = { stroke: "#5d6676", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e2e5ea" } };
    const size = () => ({ width: Math.max(el.clientWidth, 200), height: 240 });
    const plot = new uPlot(
      {
        ...size(),
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        legend: { live: false },
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
        axes: [axis, { ...axis, incrs: INCRS, size: 48 }],
        series: [
          { label: "Time (UTC)" },
          ...codes.map((code) => ({
            label: code,
            stroke: COLORS[code] || "#3b4fd8",
            fill: code === "VALID" ? "rgba(31, 122, 67, 0.08)" : undefined,
            width: 2,
            points: { show: true, size: 5 },
          })),
        ],
      },
      [xs, ...ys],
      el,
    );
    new ResizeObserver(() => plot.setSize(size())).observe(el);
  }
})();
`;
