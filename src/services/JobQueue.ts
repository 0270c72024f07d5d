import { Context, type Effect, Schema, type Scope } from "effect"

export class QueueOutage extends Schema.TaggedError<QueueOutage>()("QueueOutage", {
  message: Schema.String
}) {}

/** A wake-up for a chat whose mailbox has mail; the message itself stays in Postgres. */
export interface ChatWakeUp {
  readonly chatId: number
  /** When the wake-up was enqueued (epoch ms), for the queue-wait metric. */
  readonly enqueuedAt: number
}

/**
 * Delivers chat wake-ups to consumers, at least once, many chats at a time. Order and
 * exclusivity per chat come from the mailbox and the ChatLock, not from the queue.
 * Layers: BullMQ on Redis (layers/BullMqJobQueue.ts) and in-process (layers/MemoryJobQueue.ts).
 */
export class JobQueue extends Context.Service<JobQueue, {
  readonly wake: (chatIds: ReadonlyArray<number>) => Effect.Effect<void, QueueOutage>
  readonly ping: Effect.Effect<void, QueueOutage>
  /**
   * Starts taking wake-ups, up to `concurrency` at once, until the scope closes. On close it
   * stops taking work, lets in-flight handlers finish for `grace`, then interrupts the rest.
   */
  readonly consume: (
    handler: (wakeUp: ChatWakeUp) => Effect.Effect<void, unknown>,
    options: { readonly concurrency: number; readonly graceMillis: number }
  ) => Effect.Effect<void, never, Scope.Scope>
}>()("bot/JobQueue") {}
