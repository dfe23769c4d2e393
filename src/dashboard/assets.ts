// The dashboard's stylesheet and scripts are files (src/dashboard/static/, plus uPlot) that
// scripts/build-assets.mjs copies into the [assets] binding under fingerprinted names; a page
// links to a name's current file, which is cached for a year (a new build is a new name).
import manifest from "./asset-manifest.json";

export type AssetName = keyof typeof manifest;

/** The dashboard's asset route, and the files' folder in the binding (public/dashboard/assets). */
const ASSET_PATH = "/dashboard/assets";

/** Where a page links an asset: its fingerprinted file under /dashboard/assets/. */
export const assetUrl = (name: AssetName) => `${ASSET_PATH}/${manifest[name]}`;

const FILES = new Set<string>(Object.values(manifest));
const TYPES: Record<string, string> = {
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

/** GET /dashboard/assets/:file — only this build's files; anything else is a 404. */
export async function serveAsset(
  assets: Fetcher | undefined,
  requestUrl: string,
  file: string,
): Promise<Response> {
  const notFound = () => new Response("Not found", { status: 404 });
  if (!FILES.has(file) || !assets) return notFound();
  const asset = await assets.fetch(new URL(`${ASSET_PATH}/${file}`, requestUrl));
  if (!asset.ok) return notFound();
  return new Response(asset.body, {
    headers: {
      "content-type": TYPES[file.slice(file.lastIndexOf("."))] ?? "application/octet-stream",
      "cache-control": "public, max-age=31536000, immutable",
    },
  });
}
