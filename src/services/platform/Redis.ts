import { Redis as IORedis } from "ioredis"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { StartupError } from "./StartupError.ts"

/** A Redis command failed (connection down, timeout, server error); the client's error is the cause. */
export class RedisOutage extends Schema.TaggedError<RedisOutage>()("RedisOutage", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** Where REDIS_URL points, without its password: `host:port/db`. */
const whereOf = (url: Redacted.Redacted) => {
  try {
    const parsed = new URL(Redacted.value(url))
    return `${parsed.hostname}:${parsed.port || "6379"}${parsed.pathname || "/0"}`
  } catch {
    return "an address that is not a URL"
  }
}

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
   * Connects to `url` (REDIS_URL) before the layer is built; fails with StartupError, naming
   * Redis's address (never its password), when it is not up within 10 s.
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
              catch: (cause) => (cause instanceof Error ? cause.message : String(cause))
            }).pipe(
              Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.fail("no answer within 10 s") }),
              Effect.mapError((reason) => new StartupError({ message: `cannot reach Redis at ${whereOf(url)} (REDIS_URL): ${reason}.` }))
            )
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
