import { Redis as IORedis } from "ioredis"
import { Context, Effect, Layer, Redacted, Schema } from "effect"

/** A Redis command failed (connection down, timeout, server error); the client's error is the cause. */
export class RedisOutage extends Schema.TaggedError<RedisOutage>()("RedisOutage", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** How long connecting may take, and any one command (a silent connection must not hang a webhook). */
const connectTimeoutMillis = 5_000
const commandTimeoutMillis = 5_000

/** The process's shared ioredis connection. Commands fail at once while it is disconnected. */
export class Redis extends Context.Service<Redis, {
  readonly client: IORedis
  /** For the extra connections a blocking consumer (BullMQ Worker) opens itself. */
  readonly url: Redacted.Redacted
}>()("bot/Redis") {
  /**
   * Connects to `url` (REDIS_URL) before the layer is built; fails with RedisOutage when the
   * connection is refused, and with TimeoutError when it is not up within 10 s.
   */
  static readonly layer = (url: Redacted.Redacted) =>
    Layer.effect(
      Redis,
      Effect.acquireRelease(
        Effect.sync(() =>
          new IORedis(Redacted.value(url), {
            // Fail fast instead of buffering while Redis is away: the webhook answers 503 and
            // Telegram retries, which is the durable buffer.
            enableOfflineQueue: false,
            maxRetriesPerRequest: 1,
            connectTimeout: connectTimeoutMillis,
            commandTimeout: commandTimeoutMillis,
            retryStrategy: (attempt) => Math.min(attempt * 200, 2_000)
          })
        ).pipe(
          // Connection errors surface on the commands (and /ready); ioredis reconnects by itself.
          Effect.tap((client) => Effect.sync(() => client.on("error", () => undefined))),
          Effect.tap((client) =>
            Effect.tryPromise({
              try: () => (client.status === "ready" ? Promise.resolve() : new Promise<void>((resolve, reject) => {
                client.once("ready", () => resolve())
                client.once("error", reject)
              })),
              catch: (cause) => new RedisOutage({ message: `cannot connect to Redis: ${String(cause)}`, cause })
            }).pipe(Effect.timeout("10 seconds"))
          ),
          Effect.map((client) => Redis.of({ client, url }))
        ),
        ({ client }) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
      )
    )
}

/** Runs one command, mapping connection and server errors to RedisOutage (ioredis's error as cause). */
export const redisCall = <A>(run: () => Promise<A>): Effect.Effect<A, RedisOutage> =>
  Effect.tryPromise({ try: run, catch: (cause) => new RedisOutage({ message: `Redis: ${String(cause)}`, cause }) })
