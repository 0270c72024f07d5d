import { Context, type Effect, type Option, Schema } from "effect"
import type { RedisOutage } from "./Redis.ts"

/**
 * The lease ran out (or could not be renewed in time) and the chat may pass to another worker.
 * `cause`: the last renewal's failure, when renewals failed.
 */
export class LostLock extends Schema.TaggedError<LostLock>()("LostLock", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * One holder per chat at a time: each chat is an actor, answering one message at a time, in order.
 * Implementations: `layers/platform/ChatLockRedis.ts` (a leased Redis key, shared by every
 * process) and `ChatLockMemory.ts` (in process, for the embedded mode).
 */
export class ChatLock extends Context.Service<ChatLock, {
  /**
   * Runs `effect` while holding the chat's lock and returns Some(result); returns None without
   * running it when another holder has the lock. Fails with LostLock (interrupting `effect`) when
   * the lease is lost, and with RedisOutage when the lock cannot be taken.
   */
  readonly withLock: <A, E, R>(
    chatId: number,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<Option.Option<A>, E | RedisOutage | LostLock, R>
  /** Which of `chatIds` have a holder now (a live lease): their turn is still working. Fails with RedisOutage. */
  readonly held: (chatIds: ReadonlyArray<number>) => Effect.Effect<ReadonlySet<number>, RedisOutage>
}>()("bot/ChatLock") {}
