import { Clock, Duration, Effect, Fiber, FiberSet, Layer, Queue, Semaphore } from "effect"
import { type ChatWakeUp, JobQueue, QueueOutage } from "../../services/platform/JobQueue.ts"

/** A failed wake-up is tried again a second later, three times in all; then the sweeper's turn. */
const maxAttempts = 3
const retryDelay = Duration.seconds(1)

type Job = ChatWakeUp & { readonly attempt: number }

const closed = new QueueOutage({ message: "queue: the in-process queue is closed (the process is stopping)" })

/**
 * In-process JobQueue for the single-process embedded mode: same contract, nothing survives a
 * restart (the mailbox in Postgres does, and the sweeper wakes its chats again). Closed with
 * its layer: from then on `wake` and `ping` fail with QueueOutage.
 */
export const layer = Layer.effect(
  JobQueue,
  Effect.gen(function*() {
    const queue = yield* Effect.acquireRelease(Queue.unbounded<Job>(), (queue) => Queue.shutdown(queue))
    const layerScope = yield* Effect.scope
    const open = Effect.suspend(() => (queue.state._tag === "Open" ? Effect.void : Effect.fail(closed)))

    return JobQueue.of({
      wake: Effect.fn("JobQueue.wake")(function*(chatIds: ReadonlyArray<number>, traces?: ReadonlyMap<number, string>) {
        yield* open
        const enqueuedAt = yield* Clock.currentTimeMillis
        const jobs = chatIds.map((chatId): Job => {
          const trace = traces?.get(chatId)
          return trace === undefined ? { chatId, enqueuedAt, attempt: 1 } : { chatId, enqueuedAt, trace, attempt: 1 }
        })
        const refused = yield* Queue.offerAll(queue, jobs)
        if (refused.length > 0) return yield* closed
      }),
      ping: open.pipe(Effect.withSpan("JobQueue.ping")),
      consume: Effect.fn("JobQueue.consume")(function*<E>(
        handler: (wakeUp: ChatWakeUp) => Effect.Effect<void, E>,
        { concurrency, graceMillis }: { readonly concurrency: number; readonly graceMillis: number }
      ) {
        const inFlight = yield* FiberSet.make()
        const permits = yield* Semaphore.make(concurrency)
        // A failed wake-up waits for its retry outside the consumer, holding no concurrency slot;
        // one interrupted by shutdown goes back to the queue for the next consumer.
        const retryLater = (job: Job) =>
          Queue.offer(queue, { ...job, attempt: job.attempt + 1 }).pipe(Effect.delay(retryDelay), Effect.forkIn(layerScope))
        const runOne = (job: Job) =>
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
