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
    const layerScope = yield* Effect.scope
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
        // A failed wake-up waits for its retry outside the consumer, holding no concurrency slot;
        // one interrupted by shutdown goes back to the queue for the next consumer.
        const retryLater = (job: ChatWakeUp & { readonly attempt: number }) =>
          Queue.offer(queue, { ...job, attempt: job.attempt + 1 }).pipe(Effect.delay(retryDelay), Effect.forkIn(layerScope))
        const runOne = (job: ChatWakeUp & { readonly attempt: number }) =>
          handler(job).pipe(
            Effect.onInterrupt(() => Queue.offer(queue, job)),
            Effect.catchCause((cause) =>
              job.attempt >= maxAttempts
                ? Effect.logError("chat wake-up failed for good", cause).pipe(Effect.annotateLogs({ chat_id: job.chatId }))
                : retryLater(job)
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
