import { ByteSize, Effect, Option, Redacted } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { classify, decodeUpdate } from "../schema/TelegramUpdate.ts"
import { AppConfig } from "../services/AppConfig.ts"
import { Inbox } from "../services/Inbox.ts"
import { instrument } from "./instrument.ts"
import { matchesSecret, secretDigest } from "./secret.ts"

const status = (code: number) => HttpServerResponse.empty({ status: code })

/**
 * POST /telegram/webhook: check the secret, bound and decode the body, record the update and
 * wake its chat, then 200. Storage or queue away: 503, so Telegram delivers it again.
 */
export const TelegramWebhookRoute = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const config = yield* AppConfig
  const inbox = yield* Inbox
  const expected = Option.map(config.telegramWebhookSecret, (secret) => secretDigest(Redacted.value(secret)))
  const maxBody = ByteSize.bytes(config.maxBodyBytes)

  const handle = Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const given = request.headers["x-telegram-bot-api-secret-token"]
    if (Option.isNone(expected) || !matchesSecret(expected.value, given)) return status(401)
    if (Number(request.headers["content-length"] ?? 0) > config.maxBodyBytes) return status(413)
    const body = yield* request.text.pipe(
      Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBody),
      Effect.result
    )
    if (body._tag === "Failure") {
      const reason = body.failure.reason
      return status(reason._tag === "RequestParseError" && reason.reason === "BodyTooLarge" ? 413 : 400)
    }
    let json: unknown
    try {
      json = JSON.parse(body.success)
    } catch {
      return status(400)
    }
    const update = yield* decodeUpdate(json).pipe(Effect.option)
    if (Option.isNone(update)) return status(400)
    return yield* inbox.accept(classify(update.value)).pipe(
      Effect.as(status(200)),
      Effect.catchTags({
        StorageOutage: (error) => Effect.logWarning("webhook refused: storage unavailable", error.message).pipe(Effect.as(status(503))),
        QueueOutage: (error) => Effect.logWarning("webhook refused: queue unavailable", error.message).pipe(Effect.as(status(503)))
      }),
      Effect.annotateLogs({ update_id: update.value.update_id })
    )
  })

  yield* router.add("POST", "/telegram/webhook", instrument("/telegram/webhook", handle))
}))
