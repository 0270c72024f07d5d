import { Cause, Clock, Duration, Effect, Exit, Layer, Metric, Option } from "effect"
import { ChatTurn } from "../../services/chat/ChatTurn.ts"
import { Mailbox } from "../../services/chat/Mailbox.ts"
import { TurnStarts } from "../../services/chat/TurnStarts.ts"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { ChatLock } from "../../services/platform/ChatLock.ts"
import { type ChatWakeUp, JobQueue } from "../../services/platform/JobQueue.ts"
import { queueWait } from "../../services/platform/Metrics.ts"
import { inTrace } from "../../services/platform/TraceContext.ts"

/**
 * Each chat is an actor: a wake-up takes the chat's lock and answers its mailbox oldest first
 * until it is empty. A wake-up that finds the lock taken ends at once: the holder looks at the
 * mailbox again after releasing the lock and wakes the chat if mail came in meanwhile. On
 * shutdown it logs how many turns were in flight, finished within the grace period, or were
 * handed back to the mailbox.
 */
export const ChatWorkerLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  const queue = yield* JobQueue
  const lock = yield* ChatLock
  const mailbox = yield* Mailbox
  const chatTurn = yield* ChatTurn
  const starts = yield* TurnStarts

  // Each turn, from its claim, takes its place among the turns getting ready (TurnStarts).
  const drain = (chatId: number): Effect.Effect<void, Effect.Error<ReturnType<typeof chatTurn.run>>> =>
    starts.run(mailbox.claimNext(chatId).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.succeed(false),
        // Each turn joins the trace of the request that brought its message. With no later mail
        // when it was claimed, the mailbox is looked at once more only after the lock's release.
        onSome: (mail) => chatTurn.run(mail).pipe(inTrace(mail.trace), Effect.as(mail.laterPending))
      }))
    )).pipe(Effect.flatMap((more) => (more ? drain(chatId) : Effect.void)))

  // For the shutdown's line: wake-ups (each one turn at a time) in flight when it began, and
  // how each of those ended: finished within the grace period, or handed back.
  const shutdown = { begun: false, inFlight: 0, finished: 0, handedBack: 0 }
  let inFlight = 0
  const counted = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.sync(() => inFlight++).pipe(
      Effect.andThen(effect),
      Effect.onExit((exit) =>
        Effect.sync(() => {
          inFlight--
          if (!shutdown.begun) return
          if (Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)) shutdown.handedBack++
          else shutdown.finished++
        })
      )
    )

  const handle = (wakeUp: ChatWakeUp) =>
    Effect.gen(function*() {
      yield* Metric.update(queueWait, Math.max(0, (yield* Clock.currentTimeMillis) - wakeUp.enqueuedAt) / 1000)
      const held = yield* lock.withLock(wakeUp.chatId, drain(wakeUp.chatId))
      if (Option.isSome(held) && (yield* mailbox.hasPending(wakeUp.chatId))) yield* queue.wake([wakeUp.chatId])
    }).pipe(
      // The wake-up still fails, so the queue backs off and tries again (then the sweeper). A
      // postponed reply is routine (Telegram away or flood-waiting): one Info line.
      Effect.tapError((error) =>
        error._tag === "DeliveryPostponed"
          ? Effect.logInfo("reply postponed", error.message)
          : Effect.logError("chat wake-up failed", Cause.fail(error))
      ),
      Effect.tapDefect((defect) => Effect.logError("chat wake-up failed", Cause.die(defect))),
      Effect.annotateLogs({ chat_id: wakeUp.chatId }),
      // A wake-up joins the trace of the update that caused it; one with none (the sweeper's, a
      // notice's) is a trace of its own, never a child of the long-lived consumer.
      Effect.withSpan("ChatWorker.handle", { attributes: { chatId: wakeUp.chatId }, root: wakeUp.trace === undefined }),
      inTrace(wakeUp.trace)
    )

  // Finalizers run last-added first: this line comes after the queue's grace period is over.
  yield* Effect.addFinalizer(() =>
    Effect.logInfo("chat worker stopped").pipe(Effect.annotateLogs({
      in_flight: shutdown.inFlight,
      finished: shutdown.finished,
      handed_back: shutdown.handedBack
    }))
  )
  yield* queue.consume((wakeUp) => counted(handle(wakeUp)), {
    concurrency: config.workerConcurrency,
    graceMillis: Duration.toMillis(config.shutdownGrace)
  })
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      shutdown.begun = true
      shutdown.inFlight = inFlight
    })
  )
  yield* Effect.logInfo("chat worker started").pipe(Effect.annotateLogs({ concurrency: config.workerConcurrency }))
}))
