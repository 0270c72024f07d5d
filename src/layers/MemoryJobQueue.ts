import { Duration, Effect, Fiber, FiberSet, Layer, Queue, Semaphore } from "effect"
import { type ChatWakeUp, JobQueue } from "../services/JobQueue.ts"

const maxAttempts = 3
const retryDelay = Duration.seconds(1)

/** In-process JobQueue for the single-process embedded mode: same contract, nothing survives a restart
 * (the mailbox in Postgres does, and the sweeper wakes its chats again). */
export const MemoryJobQueueLayer = Layer.effect(
  JobQueue,
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<ChatWakeUp & { readonly attempt: number }>()
    return JobQueue.of({
      wake: (chatIds) =>
        Effect.sync(() => Date.now()).pipe(
          Effect.flatMap((now) => Queue.offerAll(queue, chatIds.map((chatId) => ({ chatId, enqueuedAt: now, attempt: 1 })))),
          Effect.asVoid
        ),
      ping: Effect.void,
      consume: Effect.fn("MemoryJobQueue.consume")(function*(handler, { concurrency, graceMillis }) {
        const inFlight = yield* FiberSet.make()
        const permits = yield* Semaphore.make(concurrency)
        const runOne = (job: ChatWakeUp & { readonly attempt: number }) =>
          handler(job).pipe(
            Effect.catchCause((cause) =>
              job.attempt >= maxAttempts
                ? Effect.logError("chat wake-up failed for good", cause).pipe(Effect.annotateLogs({ chat_id: job.chatId }))
                : Effect.sleep(retryDelay).pipe(Effect.andThen(Queue.offer(queue, { ...job, attempt: job.attempt + 1 })))
            ),
            Effect.ensuring(permits.release(1))
          )
        const taker = yield* Effect.forkScoped(
          Effect.forever(
            permits.take(1).pipe(
              Effect.andThen(Queue.take(queue)),
              Effect.flatMap((job) => FiberSet.run(inFlight, runOne(job)))
            )
          )
        )
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            yield* Fiber.interrupt(taker)
            yield* FiberSet.awaitEmpty(inFlight).pipe(Effect.timeout(Duration.millis(graceMillis)), Effect.ignore)
            yield* FiberSet.clear(inFlight)
          })
        )
      })
    })
  })
)
