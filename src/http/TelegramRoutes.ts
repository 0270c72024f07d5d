import { ByteSize, Effect, Option, Redacted } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest } from "effect/http"
import { decodeJson, inboundOf } from "../schema/telegram/TelegramUpdate.ts"
import { Inbox } from "../services/chat/Inbox.ts"
import { AppConfig } from "../services/platform/AppConfig.ts"
import { BotIdentity } from "../services/telegram/BotIdentity.ts"
import { refusal, serve, status } from "./instrument.ts"
import { matchesSecret, secretDigest } from "./secret.ts"


/**
 * POST /telegram/webhook: check the secret (401), bound the body (413 over MAX_BODY_BYTES),
 * decode it (400 when it is not JSON or has no update_id; an update of a shape the bot does not
 * expect is stored as ignored, 200, and logged once per kind), record the update and wake its
 * chat, then 200. Storage, queue or limiter away, or a group message while the bot's identity
 * cannot be learned: 503, so Telegram delivers it again.
 */
export const TelegramRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const config = yield* AppConfig
  const inbox = yield* Inbox
  const identity = yield* BotIdentity
  const expected = Option.map(config.telegramWebhookSecret, (secret) => secretDigest(Redacted.value(secret)))
  const maxBody = ByteSize.bytes(config.maxBodyBytes)
  const handle = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const given = request.headers["x-telegram-bot-api-secret-token"]
    if (Option.isNone(expected) || !matchesSecret(expected.value, given)) return refusal(401)
    if (Number(request.headers["content-length"] ?? 0) > config.maxBodyBytes) return refusal(413)
    const body = yield* request.text.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBody),
      Effect.result
    )
    if (body._tag === "Failure") {
      const reason = body.failure.reason
      return status(reason._tag === "RequestParseError" && reason.reason === "BodyTooLarge" ? 413 : 400)
    }
    const json = yield* decodeJson(body.success).pipe(Effect.option)
    if (Option.isNone(json)) return status(400)
    // A group message is classified by who it addresses: without the bot's identity, not now.
    const update = yield* inboundOf(json.value, identity.audience).pipe(Effect.result)
    if (update._tag === "Failure") {
      return yield* Effect.logWarning("webhook refused: the bot's identity (getMe) is unknown", update.failure.message).pipe(
        Effect.as(status(503))
      )
    }
    if (Option.isNone(update.success)) return status(400)
    const inbound = update.success.value
    return yield* inbox.accept(inbound).pipe(
      Effect.as(status(200)),
      Effect.catchTag(["StorageOutage", "QueueOutage", "RedisOutage"], (error) =>
        Effect.logWarning("webhook refused: storage or queue unavailable", error.message).pipe(Effect.as(status(503)))),
      Effect.annotateLogs({ update_id: inbound.updateId })
    )
  })

  yield* serve(router, "POST", "/telegram/webhook", handle)
}))
