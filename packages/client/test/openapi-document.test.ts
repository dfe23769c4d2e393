// The client's types are generated from this committed copy of Keygate's OpenAPI document
// (`npm run client:generate`). The document comes from the Worker itself, in process; when a
// route changes and the copy is not regenerated, this test fails (CI never rewrites it).
import { expect, it } from "vitest";
import { call } from "../../../test/helpers";

it("packages/client/openapi.json is Keygate's current /openapi.json", async () => {
  const { status, text } = await call("GET", "/openapi.json");
  expect(status).toBe(200);
  // `servers` names the origin that served the document (here the test's): not part of the API.
  const { servers: _origin, ...document } = JSON.parse(text);
  await expect(`${JSON.stringify(document, null, 2)}\n`).toMatchFileSnapshot("../openapi.json");
});
