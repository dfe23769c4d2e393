// Routes the pair's one port to its two Keygate Workers (wrangler.pair-router.toml).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/b-rpc/verify" && request.method === "POST") {
      const { key, ...options } = await request.json();
      try {
        return Response.json(await env.B_RPC.verify(key, options));
      } catch (error) {
        return Response.json({ error: String(error) }, { status: 503 });
      }
    }
    if (url.pathname === "/b" || url.pathname.startsWith("/b/")) {
      url.pathname = url.pathname.slice(2) || "/";
      return env.B.fetch(new Request(url, request));
    }
    return env.A.fetch(request);
  },
};
