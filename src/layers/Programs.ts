import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"
import { HealthRoutes } from "../http/Health.ts"
import { TelegramWebhookRoute } from "../http/TelegramWebhook.ts"
import { ChatWorkerLive } from "../jobs/ChatWorker.ts"
import { SweeperLive } from "../jobs/Sweeper.ts"
import { UpdateSourceLive } from "../jobs/UpdateSource.ts"
import { Ai } from "../services/Ai.ts"
import { AppConfig, InvalidConfig } from "../services/AppConfig.ts"
import { ChatLock } from "../services/ChatLock.ts"
import { ChatTurn } from "../services/ChatTurn.ts"
import { Conversations } from "../services/Conversations.ts"
import { Inbox } from "../services/Inbox.ts"
import { Mailbox } from "../services/Mailbox.ts"
import { RateLimiter } from "../services/RateLimiter.ts"
import { Redis } from "../services/Redis.ts"
import { ReplyWriter } from "../services/ReplyWriter.ts"
import { Telegram } from "../services/Telegram.ts"
import { BullMqJobQueueLayer } from "./BullMqJobQueue.ts"
import { DatabaseLive } from "./Database.ts"
import { LoggingLive } from "./Logging.ts"
import { MemoryJobQueueLayer } from "./MemoryJobQueue.ts"
import { TracingLive } from "./Tracing.ts"

/** JobQueue, ChatLock and RateLimiter on Redis when REDIS_URL is set, in process otherwise. */
const CoordinationLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  return Option.match(config.redisUrl, {
    onNone: () => Layer.mergeAll(MemoryJobQueueLayer, ChatLock.layerMemory, RateLimiter.layerMemory),
    onSome: (url) =>
      Layer.mergeAll(BullMqJobQueueLayer, ChatLock.layerRedis(config.turnLease), RateLimiter.layerRedis).pipe(
        Layer.provide(Redis.layer(url))
      )
  })
}))

/** Everything the programs share: storage, coordination, the outside services, the domain. */
const InfrastructureLive = Layer.mergeAll(DatabaseLive, CoordinationLive, Telegram.layer, Ai.layer)

const DomainLive = Layer.mergeAll(Inbox.layer, Mailbox.layer, Conversations.layer).pipe(
  Layer.provideMerge(InfrastructureLive)
)

const TurnsLive = ChatTurn.layer.pipe(Layer.provide(ReplyWriter.layer), Layer.provideMerge(DomainLive))

const HttpLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  // The router's per-request log line costs three quarters of the throughput: off.
  return HttpRouter.serve(Layer.mergeAll(TelegramWebhookRoute, HealthRoutes), { disableLogger: true }).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: config.port, host: "0.0.0.0" }))
  )
}))

const ApiParts = Layer.mergeAll(HttpLive, UpdateSourceLive)
const WorkerParts = Layer.mergeAll(ChatWorkerLive, SweeperLive)

/** Separate API and worker processes only meet through Postgres and Redis: refuse to start alone. */
const RequireSharedStorage = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  if (Option.isNone(config.databaseUrl) || Option.isNone(config.redisUrl)) {
    return yield* new InvalidConfig({
      message:
        "start:api and start:worker run as separate processes and need DATABASE_URL and REDIS_URL; " +
        "without them use `npm start`, which runs both in one process"
    })
  }
}))

const program = <A, E, R>(parts: Layer.Layer<A, E, R>) =>
  parts.pipe(
    Layer.provide(TurnsLive),
    Layer.provide(Layer.mergeAll(LoggingLive, TracingLive)),
    Layer.provideMerge(AppConfig.layer)
  )

/** HTTP (webhook or long polling) and the chat worker in one process: the single-machine default. */
export const AllProgram = program(Layer.mergeAll(ApiParts, WorkerParts))
/** The HTTP program alone (scale it to N processes on the same Postgres and Redis). */
export const ApiProgram = program(Layer.mergeAll(RequireSharedStorage, ApiParts))
/** The worker program alone. */
export const WorkerProgram = program(Layer.mergeAll(RequireSharedStorage, WorkerParts))
