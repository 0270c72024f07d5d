import { Queue, Worker } from "bullmq"
import { Duration, Effect, FiberSet, Layer, Redacted } from "effect"
import { type ChatWakeUp, JobQueue, QueueOutage } from "../services/JobQueue.ts"
import { Redis, redisCall } from "../services/Redis.ts"

const queueName = "chat-wakeups"

/** BullMQ on Redis: wake-ups survive restarts and reach any worker process. */
export const BullMqJobQueueLayer = Layer.effect(
  JobQueue,
  Effect.gen(function*() {
    const redis = yield* Redis
    const queue = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Queue<ChatWakeUp>(queueName, {
          connection: redis.client,
          defaultJobOptions: {
            // A failed wake-up (database away) is tried again; the sweeper is the last resort.
            attempts: 5,
            backoff: { type: "exponential", delay: 1_000 },
            removeOnComplete: true,
            removeOnFail: { count: 1_000 }
          }
        })
      ),
      (queue) => Effect.promise(() => queue.close())
    )
    const unavailable = (cause: unknown) => new QueueOutage({ message: `queue: ${String(cause)}` })

    return JobQueue.of({
      wake: (chatIds) =>
        Effect.tryPromise({
          try: async () => {
            const enqueuedAt = Date.now()
            if (chatIds.length === 1) await queue.add("wake", { chatId: chatIds[0]!, enqueuedAt })
            else await queue.addBulk(chatIds.map((chatId) => ({ name: "wake", data: { chatId, enqueuedAt } })))
          },
          catch: unavailable
        }),
      ping: redisCall(() => redis.client.ping()).pipe(Effect.mapError(unavailable), Effect.asVoid),
      consume: Effect.fn("BullMqJobQueue.consume")(function*(handler, { concurrency, graceMillis }) {
        const inFlight = yield* FiberSet.make()
        const run = yield* FiberSet.runtimePromise(inFlight)<never>()
        const worker = new Worker<ChatWakeUp>(queueName, (job) => run(handler(job.data)), {
          connection: { url: Redacted.value(redis.url), maxRetriesPerRequest: null },
          concurrency,
          autorun: true
        })
        worker.on("error", () => undefined) // reconnects by itself; failures show on /ready
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            // Stop taking jobs, let in-flight turns finish within the grace period, then
            // interrupt the rest: their messages go back to the mailbox for the next worker.
            yield* Effect.promise(() => worker.pause(true)).pipe(Effect.timeout(Duration.millis(graceMillis)), Effect.ignore)
            yield* FiberSet.awaitEmpty(inFlight).pipe(Effect.timeout(Duration.millis(graceMillis)), Effect.ignore)
            yield* FiberSet.clear(inFlight)
            yield* Effect.promise(() => worker.close(true)).pipe(Effect.timeout("5 seconds"), Effect.ignore)
          })
        )
      })
    })
  })
)
