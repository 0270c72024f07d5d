import { ByteSize, Effect, Option } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { InvalidEvent, LemonEvents } from "../services/billing/LemonEvents.ts"
import { isSignedBy } from "../services/billing/WebhookSignature.ts"
import { AppConfig } from "../services/platform/AppConfig.ts"
import { RateLimits } from "../services/platform/RateLimits.ts"
import { clientAddress } from "./clientAddress.ts"
import { refusal, serve, status } from "./instrument.ts"

const decoder = new TextDecoder("utf-8", { fatal: true })

/**
 * POST /lemonsqueezy/webhook: the body bounded (413), its X-Signature verified over the raw
 * bytes before anything is parsed, then stored and applied once (200, a replay too). Not an
 * event: 400. Postgres away: 503, so LemonSqueezy delivers it again. Billing off: 404.
 * A request that fails verification is refused with 401 and stores nothing; past
 * RATE_LIMIT_LEMON_WEBHOOK_PER_MINUTE such requests a minute from one address, with 429. Signed
 * deliveries are never limited: LemonSqueezy retries only three times, and a payment is at stake.
 */
export const LemonSqueezyRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const config = yield* AppConfig
  const events = yield* LemonEvents
  const limits = yield* RateLimits
  const maxBody = ByteSize.bytes(config.maxBodyBytes)
  const secrets = Option.match(config.lemonSqueezy, { onNone: () => [], onSome: (lemon) => lemon.webhookSecrets })

  const handle = Effect.gen(function*() {
    if (secrets.length === 0) return status(404)
    const request = yield* HttpServerRequest.HttpServerRequest
    if (Number(request.headers["content-length"] ?? 0) > config.maxBodyBytes) return refusal(413)
    const body = yield* request.arrayBuffer.pipe(Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBody), Effect.result)
    if (body._tag === "Failure") {
      const reason = body.failure.reason
      return status(reason._tag === "RequestParseError" && reason.reason === "BodyTooLarge" ? 413 : 400)
    }
    const bytes = new Uint8Array(body.success)
    if (!isSignedBy(bytes, request.headers["x-signature"], secrets)) {
      const [decision] = yield* limits.consume("lemon_webhook", [clientAddress(request)])
      return decision!.allowed
        ? refusal(401)
        : HttpServerResponse.empty({ status: 429, headers: { "retry-after": String(Math.ceil(decision!.retryAfterMillis / 1000)) } })
    }
    const text = yield* Effect.try({
      try: () => decoder.decode(bytes),
      catch: () => new InvalidEvent({ message: "the body is not UTF-8" })
    })
    const reception = yield* events.receive(text)
    yield* Effect.logInfo("LemonSqueezy event", reception).pipe(
      Effect.annotateLogs({ event: request.headers["x-event-name"] ?? "unknown" })
    )
    return status(200)
  }).pipe(
    Effect.catchTags({
      InvalidEvent: (error) => Effect.logWarning("LemonSqueezy webhook refused", error.message).pipe(Effect.as(status(400))),
      StorageOutage: (error) => Effect.logWarning("LemonSqueezy webhook: storage unavailable", error.message).pipe(Effect.as(status(503))),
      RedisOutage: (error) => Effect.logWarning("LemonSqueezy webhook: Redis unavailable", error.message).pipe(Effect.as(status(503)))
    })
  )

  yield* serve(router, "POST", "/lemonsqueezy/webhook", handle)
}))
