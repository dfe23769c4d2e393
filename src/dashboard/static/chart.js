// Draws each `[data-chart]` with uPlot: one line per outcome, empty slots as zeros, in UTC.
(() => {
  const COLORS = {
    VALID: "#1f7a43",
    REVOKED: "#c0362c",
    EXPIRED: "#b35c00",
    DISABLED: "#6b7280",
    INSUFFICIENT_SCOPE: "#7c3aed",
    WRONG_PROJECT: "#0e7490",
    IP_NOT_ALLOWED: "#be185d",
    RATE_LIMITED: "#d97706",
    USAGE_EXCEEDED: "#4338ca",
  };
  const ORDER = Object.keys(COLORS);
  const STEP = { minute: 60, hour: 3600, day: 86400 };
  const INCRS = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7, 1e8, 1e9,
  ];
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
      codes.forEach((code, c) => {
        ys[c][i] = bucket.counts[code] || 0;
      });
    }
    const axis = { stroke: "#5d6676", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e2e5ea" } };
    const size = () => ({ width: Math.max(el.clientWidth, 200), height: 240 });
    const plot = new uPlot(
      {
        ...size(),
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        legend: { live: false },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
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
