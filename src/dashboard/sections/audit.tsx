// The organization's audit log, newest first.
import { listAuditEvents } from "../../core/audit";
import { DEFAULT_PAGE_SIZE } from "../../core/pagination";
import { pageLinks, pageRequest, section } from "../frame";
import { PageHead } from "../layout";
import { AuditTable } from "../pages";

export const audit = section();

audit.get("/", async (c) => {
  const { core, principal } = c.var;
  const result = await listAuditEvents(
    core,
    principal,
    principal.organizationId,
    pageRequest(c, DEFAULT_PAGE_SIZE),
  );
  return c.render(
    <>
      <PageHead title="Audit log" sub="Every change in this organization, newest first." />
      <div class="card flush">
        <AuditTable events={result.items} now={core.now()} {...pageLinks(c, result.nextCursor)} />
      </div>
    </>,
    { title: "Audit log", section: "audit" },
  );
});
