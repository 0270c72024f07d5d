import { Queue, Worker } from "bullmq"
import { Clock, Duration, Effect, FiberSet, Layer, Redacted } from "effect"
import { type ChatWakeUp, JobQueue, QueueOutage } from "../../services/platform/JobQueue.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"

const queueName = "chat-wakeups"

/** A failed wake-up (database away) is tried again 1, 2, 4, 8 s later; the sweeper is the last resort. */
const wakeUpAttempts = 5
const wakeUpBackoff = { type: "exponential", delay: 1_000 } as const

/**
 * Wake-ups one BullMQ Worker takes at once: a Worker fetches jobs one by one until it holds its
 * concurrency (or the queue is empty) before starting any, so under a burst its first turn waited
 * for the whole burst to be fetched, one Redis round trip each through a busy event loop (issue
 * 10: 300 chats, 2.5 s). WORKER_CONCURRENCY is split over several Workers that fetch side by side.
 */
const jobsPerWorker = 25

const unavailable = (cause: unknown) => new QueueOutage({ message: `queue: ${String(cause)}`, cause })

/** BullMQ on Redis: wake-ups survive restarts and reach any worker process. */
export const layer = Layer.effect(
  JobQueue,
  Effect.gen(function*() {
    const redis = yield* Redis
    const queue = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Queue<ChatWakeUp>(queueName, {
          connection: redis.client,
          defaultJobOptions: {
            attempts: wakeUpAttempts,
            backoff: wakeUpBackoff,
            removeOnComplete: true,
            removeOnFail: { count: 1_000 }
          }
        })
      ),
      (queue) => Effect.promise(() => queue.close())
    )

    return JobQueue.of({
      wake: Effect.fn("JobQueue.wake")(function*(chatIds: ReadonlyArray<number>, traces?: ReadonlyMap<number, string>) {
        const enqueuedAt = yield* Clock.currentTimeMillis
        const data = (chatId: number): ChatWakeUp => {
          const trace = traces?.get(chatId)
          return trace === undefined ? { chatId, enqueuedAt } : { chatId, enqueuedAt, trace }
        }
        yield* Effect.tryPromise({
          try: async () => {
            if (chatIds.length === 1) await queue.add("wake", data(chatIds[0]!))
            else await queue.addBulk(chatIds.map((chatId) => ({ name: "wake", data: data(chatId) })))
          },
          catch: unavailable
        })
      }),
      ping: redisCall(() => redis.client.ping()).pipe(
        Effect.mapError((error) => unavailable(error.cause)),
        Effect.asVoid,
        Effect.withSpan("JobQueue.ping")
      ),
      consume: Effect.fn("JobQueue.consume")(function*<E>(
        handler: (wakeUp: ChatWakeUp) => Effect.Effect<void, E>,
        { concurrency, graceMillis }: { readonly concurrency: number; readonly graceMillis: number }
      ) {
        const inFlight = yield* FiberSet.make()
        const run = yield* FiberSet.runtimePromise(inFlight)<never>()
        const workers = Array.from({ length: Math.ceil(concurrency / jobsPerWorker) }, (_, i) => {
          const worker = new Worker<ChatWakeUp>(queueName, (job) => run(handler(job.data)), {
            connection: { url: Redacted.value(redis.url), maxRetriesPerRequest: null },
            concurrency: Math.min(jobsPerWorker, concurrency - i * jobsPerWorker),
            autorun: true
          })
          worker.on("error", () => undefined) // reconnects by itself; failures show on /ready
          return worker
        })
        const all = (f: (worker: Worker<ChatWakeUp>) => Promise<void>) => Effect.promise(() => Promise.all(workers.map(f)))
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            // Stop taking jobs, let in-flight turns finish within the grace period, then
            // interrupt the rest: their messages go back to the mailbox for the next worker.
            yield* all((worker) => worker.pause(true)).pipe(Effect.timeout(Duration.millis(graceMillis)), Effect.ignore)
            yield* FiberSet.awaitEmpty(inFlight).pipe(Effect.timeout(Duration.millis(graceMillis)), Effect.ignore)
            yield* FiberSet.clear(inFlight)
            yield* all((worker) => worker.close(true)).pipe(Effect.timeout("5 seconds"), Effect.ignore)
          })
        )
      })
    })
  })
)
