import { Context, type Effect, Schema, type Scope } from "effect"

/** The queue could not take or report on wake-ups (Redis away, or the in-process queue closed). */
export class QueueOutage extends Schema.TaggedError<QueueOutage>()("QueueOutage", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A wake-up for a chat whose mailbox has mail; the message itself stays in Postgres. */
export interface ChatWakeUp {
  readonly chatId: number
  /** When the wake-up was enqueued (epoch ms, the Clock's), for the queue-wait metric. */
  readonly enqueuedAt: number
  /** The W3C traceparent of what caused it (the update's request): its handling joins that trace. */
  readonly trace?: string
}

/**
 * Delivers chat wake-ups to consumers, at least once, many chats at a time. Order and
 * exclusivity per chat come from the mailbox and the ChatLock, not from the queue.
 * Implementations: `layers/platform/JobQueueBullMq.ts` (Redis) and `JobQueueMemory.ts` (in process).
 */
export class JobQueue extends Context.Service<JobQueue, {
  /**
   * Enqueues one wake-up per chat id (one call for the batch), each with the trace `traces`
   * gives its chat (a W3C traceparent), if any.
   */
  readonly wake: (chatIds: ReadonlyArray<number>, traces?: ReadonlyMap<number, string>) => Effect.Effect<void, QueueOutage>
  /** Succeeds while wake-ups can be enqueued: the readiness check. */
  readonly ping: Effect.Effect<void, QueueOutage>
  /**
   * Starts taking wake-ups, up to `concurrency` at once, until the scope closes. A handler that
   * fails or dies has its wake-up delivered again later (the queue's retry schedule). On close
   * it stops taking work, lets in-flight handlers finish for `graceMillis` ms, then interrupts
   * the rest.
   */
  readonly consume: <E>(
    handler: (wakeUp: ChatWakeUp) => Effect.Effect<void, E>,
    options: { readonly concurrency: number; readonly graceMillis: number }
  ) => Effect.Effect<void, never, Scope.Scope>
}>()("bot/JobQueue") {}
