import { Duration, Effect, Layer, Schedule } from "effect"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { ChatLock } from "../../services/platform/ChatLock.ts"
import { JobQueue } from "../../services/platform/JobQueue.ts"
import { ChatMigration } from "../../services/chat/ChatMigration.ts"
import { Mailbox } from "../../services/chat/Mailbox.ts"

/**
 * The outbox's safety net: mail that waited longer than one sweep interval, in a chat no worker
 * holds, has lost its wake-up (the enqueue failed after the commit) or its worker (a crash
 * mid-turn, its lease run out): wake its chat.
 * Chat moves to a supergroup that waited for a turn are finished too. Wake-ups and moves are
 * idempotent, so several workers sweeping at once is harmless.
 */
export const SweeperLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  const queue = yield* JobQueue
  const mailbox = yield* Mailbox
  const migration = yield* ChatMigration
  const lock = yield* ChatLock
  const olderThan = Duration.toSeconds(config.sweepInterval)

  // A chat whose lock has a live lease is still working (a long answer, a flood wait): its
  // holder takes the next message itself. Only chats without a holder lost their wake-up.
  const sweep = mailbox.stalledChats(olderThan).pipe(
    Effect.flatMap((stalled) => Effect.map(lock.held(stalled), (working) => stalled.filter((chatId) => !working.has(chatId)))),
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
