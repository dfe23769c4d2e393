import { describe, expect, it } from "vitest";
import { DELIVERY_BATCH } from "../src/core/webhooks";
import { runCron } from "./helpers";
import {
  cloneDelivery,
  DAY,
  deliveries,
  dueAt,
  gate,
  HOUR,
  MINUTE,
  ok,
  receivers,
  rotatedKey,
  SECOND,
  status,
} from "./webhooks-harness";

describe("fairness and leases", () => {
  it("delivers another tenant's due delivery in the first run, behind one tenant's 75 failing ones", async () => {
    // Runs a day back: no delivery left by the other tests of this file is due then.
    const runAt = Date.now() - DAY;
    const busy = await rotatedKey("backlog");
    await dueAt(busy.delivery.id, runAt - 2 * HOUR);
    await cloneDelivery(busy.delivery.id, 74, runAt - 2 * HOUR);
    const quiet = await rotatedKey("quiet");
    await dueAt(quiet.delivery.id, runAt - HOUR);
    const hooks = receivers({ [busy.url]: status(500), [quiet.url]: ok });

    await runCron(runAt);

    expect(hooks.to(quiet.url)).toHaveLength(1);
    expect((await deliveries(quiet.admin, quiet.project.id))[0]).toMatchObject({
      status: "delivered",
    });
    // The busy tenant still got the rest of the run's batch.
    expect(hooks.to(busy.url)).toHaveLength(DELIVERY_BATCH - 1);
  });

  it("never claims again an attempt still in flight, even when the run that sent it was late", async () => {
    const { admin, project, url, delivery } = await rotatedKey("late-run");
    await dueAt(delivery.id, Date.now() - 5 * MINUTE);
    const sent = gate();
    let release: (response: Response) => void = () => {};
    const answer = new Promise<Response>((resolve) => {
      release = resolve;
    });
    const hooks = receivers({
      [url]: (_sent, attempt) => {
        if (attempt > 1) return new Response("a second send");
        sent.open();
        return answer;
      },
    });

    // A run 70 s late: its scheduledTime is 70 s behind the wall clock.
    const late = runCron(Date.now() - 70 * SECOND);
    await sent.opened;
    await runCron(Date.now());
    expect(hooks.to(url)).toHaveLength(1);

    release(new Response("ok"));
    await late;
    expect(hooks.to(url)).toHaveLength(1);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({
      status: "delivered",
      attempts: 1,
    });
  });
});

describe("leases on the wall clock", () => {
  it("never claims again an attempt still in flight from runs whose instants lie ahead of the wall clock", async () => {
    const { admin, project, url, delivery } = await rotatedKey("ahead-runs");
    const start = Date.now();
    await dueAt(delivery.id, start - MINUTE);
    const sent = gate();
    let release: (response: Response) => void = () => {};
    const answer = new Promise<Response>((resolve) => {
      release = resolve;
    });
    const hooks = receivers({
      [url]: (_sent, attempt) => {
        if (attempt > 1) return new Response("a second send");
        sent.open();
        return answer;
      },
    });

    // Runs at t, t + 70 s and t + 140 s, all while the first attempt is still in flight.
    const first = runCron(start);
    await sent.opened;
    await runCron(start + 70 * SECOND);
    await runCron(start + 140 * SECOND);
    expect(hooks.to(url)).toHaveLength(1);

    release(new Response("ok"));
    await first;
    expect(hooks.to(url)).toHaveLength(1);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({
      status: "delivered",
      attempts: 1,
    });
  });
});
