import { Duration, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { JobQueue } from "../../services/platform/JobQueue.ts"
import { ChatMigration } from "../../services/chat/ChatMigration.ts"
import { Mailbox } from "../../services/chat/Mailbox.ts"

/**
 * The outbox's safety net: mail that waited longer than one sweep interval has lost its
 * wake-up (the enqueue failed after the commit) or its worker (a crash mid-turn): wake its chat.
 * Chat moves to a supergroup that waited for a turn are finished too. Wake-ups and moves are
 * idempotent, so several workers sweeping at once is harmless.
 */
export const SweeperLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  const queue = yield* JobQueue
  const mailbox = yield* Mailbox
  const migration = yield* ChatMigration
  const olderThan = Duration.toSeconds(config.sweepInterval)

  const sweep = mailbox.stalledChats(olderThan).pipe(
    Effect.flatMap((chats) =>
      chats.length === 0
        ? Effect.void
        : queue.wake(chats).pipe(Effect.andThen(Effect.logInfo("swept stalled chats", { chats: chats.length })))
    ),
    Effect.andThen(migration.finishWaiting),
    Effect.catchCause((cause) => Effect.logWarning("sweep failed", cause))
  )
  yield* Effect.forkScoped(sweep.pipe(Effect.repeat(Schedule.spaced(config.sweepInterval))))
}))
