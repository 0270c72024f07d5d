import { Cause, Duration, Effect, Layer, Metric, Option } from "effect"
import { AppConfig } from "../services/AppConfig.ts"
import { ChatLock } from "../services/ChatLock.ts"
import { ChatTurn, DeliveryPostponed } from "../services/ChatTurn.ts"
import { type ChatWakeUp, JobQueue } from "../services/JobQueue.ts"
import { Mailbox } from "../services/Mailbox.ts"
import { queueWait } from "../services/Metrics.ts"

/**
 * Each chat is an actor: a wake-up takes the chat's lock and answers its mailbox oldest first
 * until it is empty. A wake-up that finds the lock taken ends at once: the holder looks at the
 * mailbox again after releasing the lock and wakes the chat if mail came in meanwhile.
 */
export const ChatWorkerLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  const queue = yield* JobQueue
  const lock = yield* ChatLock
  const mailbox = yield* Mailbox
  const chatTurn = yield* ChatTurn

  const drain = (chatId: number): Effect.Effect<void, unknown> =>
    mailbox.claimNext(chatId).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.void,
        onSome: (mail) => chatTurn.run(mail).pipe(Effect.andThen(Effect.suspend(() => drain(chatId))))
      }))
    )

  const handle = (wakeUp: ChatWakeUp) =>
    Effect.gen(function*() {
      yield* Metric.update(queueWait, Math.max(0, Date.now() - wakeUp.enqueuedAt) / 1000)
      const held = yield* lock.withLock(wakeUp.chatId, drain(wakeUp.chatId))
      if (Option.isSome(held) && (yield* mailbox.hasPending(wakeUp.chatId))) yield* queue.wake([wakeUp.chatId])
    }).pipe(
      // A postponed reply is routine (Telegram away or flood-waiting): the wake-up fails so the
      // queue backs off, and the sweeper comes back for it.
      Effect.tapCause((cause) => {
        const error = Cause.squash(cause)
        return error instanceof DeliveryPostponed
          ? Effect.logInfo("reply postponed", error.message)
          : Effect.logError("chat wake-up failed", cause)
      }),
      Effect.annotateLogs({ chat_id: wakeUp.chatId }),
      Effect.withSpan("ChatWorker.handle", { attributes: { chatId: wakeUp.chatId } })
    )

  yield* queue.consume(handle, {
    concurrency: config.workerConcurrency,
    graceMillis: Duration.toMillis(config.shutdownGrace)
  })
  yield* Effect.logInfo("chat worker started").pipe(Effect.annotateLogs({ concurrency: config.workerConcurrency }))
}))
