import { Effect, Layer, Option } from "effect"
import { HttpServerLive } from "../http/Router.ts"
import { ChatWorkerLive } from "../jobs/chat/ChatWorker.ts"
import { SweeperLive } from "../jobs/chat/Sweeper.ts"
import { ReconcilerLive } from "../jobs/billing/Reconciler.ts"
import { LlmKeyCheckLive } from "../jobs/llm/LlmKeyCheck.ts"
import { BotCommandsLive } from "../jobs/telegram/BotCommands.ts"
import { UpdateSourceLive } from "../jobs/telegram/UpdateSource.ts"
import { Audit } from "../services/audit/Audit.ts"
import { BillingReplies } from "../services/billing/BillingReplies.ts"
import { Checkout } from "../services/billing/Checkout.ts"
import { LemonEvents } from "../services/billing/LemonEvents.ts"
import { LemonSqueezy } from "../services/billing/LemonSqueezy.ts"
import { Payments } from "../services/billing/Payments.ts"
import { PromoSeats } from "../services/billing/PromoSeats.ts"
import { Quota } from "../services/billing/Quota.ts"
import { SubscriptionNotices } from "../services/billing/SubscriptionNotices.ts"
import { Subscriptions } from "../services/billing/Subscriptions.ts"
import { Admission } from "../services/chat/Admission.ts"
import { Bursts } from "../services/chat/Bursts.ts"
import { ChatMigration } from "../services/chat/ChatMigration.ts"
import { Stops } from "../services/chat/Stops.ts"
import { Notices } from "../services/chat/Notices.ts"
import { RateLimits } from "../services/platform/RateLimits.ts"
import { ChatTurn } from "../services/chat/ChatTurn.ts"
import { Conversations } from "../services/chat/Conversations.ts"
import { Delivery } from "../services/chat/Delivery.ts"
import { Inbox } from "../services/chat/Inbox.ts"
import { LlmReply } from "../services/chat/LlmReply.ts"
import { TurnStarts } from "../services/chat/TurnStarts.ts"
import { Spend } from "../services/llm/Spend.ts"
import { GroupAdmins } from "../services/telegram/GroupAdmins.ts"
import { Tokenizer } from "../services/llm/Tokenizer.ts"
import { Mailbox } from "../services/chat/Mailbox.ts"
import { ReplyWriter } from "../services/chat/ReplyWriter.ts"
import { AppConfig, BaseConfig, InvalidConfig } from "../services/platform/AppConfig.ts"
import { Readiness } from "../services/platform/Readiness.ts"
import { Redis } from "../services/platform/Redis.ts"
import { BotIdentity } from "../services/telegram/BotIdentity.ts"
import { SendBudget } from "../services/telegram/SendBudget.ts"
import * as AiOpenAi from "./llm/AiOpenAi.ts"
import * as ChatLockMemory from "./platform/ChatLockMemory.ts"
import * as ChatLockRedis from "./platform/ChatLockRedis.ts"
import * as DatabasePglite from "./platform/DatabasePglite.ts"
import * as DatabasePostgres from "./platform/DatabasePostgres.ts"
import * as JobQueueBullMq from "./platform/JobQueueBullMq.ts"
import * as JobQueueMemory from "./platform/JobQueueMemory.ts"
import * as Logging from "./platform/Logging.ts"
import * as RateLimiterMemory from "./platform/RateLimiterMemory.ts"
import * as RateLimiterRedis from "./platform/RateLimiterRedis.ts"
import * as SendBudgetRedis from "./telegram/SendBudgetRedis.ts"
import * as Tracing from "./platform/Tracing.ts"
import * as TelegramGrammy from "./telegram/TelegramGrammy.ts"

/** Postgres on DATABASE_URL, or embedded PGlite under DATA_DIR when it is unset; migrated. */
const DatabaseLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* BaseConfig
  return Option.match(config.databaseUrl, {
    onNone: () => DatabasePglite.layer(config.dataDir),
    onSome: DatabasePostgres.layer
  })
}))

/** JobQueue, ChatLock, RateLimiter and the send budget on Redis when REDIS_URL is set, in process otherwise. */
const CoordinationLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  return Option.match(config.redisUrl, {
    onNone: () => Layer.mergeAll(JobQueueMemory.layer, ChatLockMemory.layer, RateLimiterMemory.layer, SendBudget.layer),
    onSome: (url) =>
      Layer.mergeAll(JobQueueBullMq.layer, ChatLockRedis.layer(config.turnLease), RateLimiterRedis.layer, SendBudgetRedis.layer).pipe(
        Layer.provide(Redis.layer(url))
      )
  })
}))

/** Storage, coordination and the outside services every program uses. */
const InfrastructureLive = Layer.mergeAll(
  DatabaseLive,
  TelegramGrammy.layer.pipe(Layer.provideMerge(CoordinationLive)),
  AiOpenAi.layer
)

/** The domain services, each tier on the ones below it. */
const ServicesLive = ChatTurn.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(LemonEvents.layer, BillingReplies.layer, Bursts.layer)),
  Layer.provideMerge(Layer.mergeAll(
    Inbox.layer,
    Checkout.layer,
    SubscriptionNotices.layer,
    Admission.layer,
    ReplyWriter.layer,
    Delivery.layer,
    LlmReply.layer
  )),
  Layer.provideMerge(Layer.mergeAll(
    Mailbox.layer,
    Conversations.layer,
    Readiness.layer,
    RateLimits.layer,
    Subscriptions.layer,
    Payments.layer,
    Quota.layer,
    PromoSeats.layer,
    LemonSqueezy.layer,
    Audit.layer,
    Notices.layer,
    BotIdentity.layer,
    ChatMigration.layer,
    Stops.layer,
    TurnStarts.layer,
    Tokenizer.layer,
    Spend.layer,
    GroupAdmins.layer
  )),
  Layer.provideMerge(InfrastructureLive)
)

const ApiParts = Layer.mergeAll(HttpServerLive, UpdateSourceLive, BotCommandsLive)
// The LLM key is checked before the worker takes its first turn.
const WorkerParts = Layer.mergeAll(ChatWorkerLive, SweeperLive, ReconcilerLive).pipe(Layer.provide(LlmKeyCheckLive))

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

/**
 * A program: its parts on the services, logs and traces, and the settings. With `shared`, the
 * shared-storage check runs before anything is opened (the embedded database included).
 */
const program = <A, E, R>(parts: Layer.Layer<A, E, R>, { shared = false } = {}) =>
  parts.pipe(
    Layer.provide(shared ? ServicesLive.pipe(Layer.provide(RequireSharedStorage)) : ServicesLive),
    Layer.provide(Layer.mergeAll(Logging.layer, Tracing.layer)),
    Layer.provideMerge(Layer.mergeAll(AppConfig.layer, BaseConfig.layer))
  )

/** HTTP (webhook or long polling) and the chat worker in one process: the single-machine default. */
export const AllProgram = program(Layer.mergeAll(ApiParts, WorkerParts))
/** The HTTP program alone (scale it to N processes on the same Postgres and Redis). */
export const ApiProgram = program(ApiParts, { shared: true })
/** The worker program alone. */
export const WorkerProgram = program(WorkerParts, { shared: true })
/** Applies the pending migrations and stops: building the database layer migrates. Needs only BaseConfig. */
export const MigrateProgram = Layer.effectDiscard(Effect.logInfo("migrations applied")).pipe(
  Layer.provide(DatabaseLive),
  Layer.provide(Logging.layer),
  Layer.provideMerge(BaseConfig.layer)
)
