import { createCore } from "./context";
import { addVerificationMessages } from "./core/analytics/consume";

/**
 * The queue door: batches of verification counts from every isolate, added into D1. A
 * thrown error leaves the whole delivery to the queue's retries; a redelivered message
 * counts once (see addVerificationMessages).
 */
export async function runQueue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) {
  const core = createCore(env, ctx);
  const result = await addVerificationMessages(
    core,
    batch.messages.map((message) => message.body),
  );
  if (result.rejected > 0) {
    console.warn(`verification analytics: dropped ${result.rejected} malformed message(s)`);
  }
  batch.ackAll();
  return result;
}
