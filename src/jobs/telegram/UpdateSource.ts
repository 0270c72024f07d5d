import { Effect, Layer, Option, Schedule } from "effect"
import { inboundOf } from "../../schema/telegram/TelegramUpdate.ts"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { Inbox } from "../../services/chat/Inbox.ts"
import { BotIdentity } from "../../services/telegram/BotIdentity.ts"
import { StartupError } from "../../services/platform/StartupError.ts"
import { isTransient, Telegram, type TelegramError } from "../../services/telegram/Telegram.ts"

const pollTimeoutSeconds = 25
/** Telegram or the database away: back off, at most 30 s between tries, forever. */
const pollRetry = Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("30 seconds")])
const registerRetry = Schedule.min([Schedule.exponential("2 seconds"), Schedule.spaced("1 minute")])

/**
 * Where updates come from. With PUBLIC_URL: Telegram posts them to /telegram/webhook, and this
 * registers that URL with the secret at start (a URL Telegram refuses stops the start with a
 * StartupError). Without: long polling with getUpdates, each
 * update going through the same Inbox as the webhook's, the offset moving only once stored.
 */
export const UpdateSourceLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  const telegram = yield* Telegram
  const inbox = yield* Inbox
  const identity = yield* BotIdentity

  if (Option.isSome(config.publicUrl) && Option.isSome(config.telegramWebhookSecret)) {
    const url = `${config.publicUrl.value}/telegram/webhook`
    const register = telegram.setWebhook(url, config.telegramWebhookSecret.value).pipe(
      Effect.tap(() => Effect.logInfo("webhook registered").pipe(Effect.annotateLogs({ url })))
    )
    const first = yield* Effect.result(register)
    if (first._tag === "Success") return
    const error = first.failure
    // Telegram refusing the URL (http://, a port it does not call, a host it cannot resolve):
    // the start stops with its words. Telegram away: keep trying in the background.
    if (!(error._tag === "TelegramApiError" && isTransient(error))) {
      return yield* new StartupError({
        message: `Telegram refuses the webhook ${url} (PUBLIC_URL): ${error.message}. ` +
          "PUBLIC_URL must be an https:// address Telegram can reach, on port 443, 80, 88 or 8443."
      })
    }
    yield* Effect.logWarning("cannot reach Telegram to register the webhook; retrying").pipe(
      Effect.annotateLogs({ url, error: error.message })
    )
    yield* Effect.forkScoped(register.pipe(
      Effect.retry(registerRetry.pipe(
        Schedule.while(({ input }: { input: TelegramError }) => input._tag === "TelegramApiError" && isTransient(input))
      )),
      Effect.catch((error) =>
        Effect.logError("Telegram refused the webhook; fix PUBLIC_URL and restart").pipe(
          Effect.annotateLogs({ url, error: error.message })
        ))
    ))
    return
  }

  const poll = (offset: number): Effect.Effect<never> =>
    telegram.getUpdates(offset, pollTimeoutSeconds).pipe(
      Effect.flatMap((updates) =>
        updates.length === 0 ? Effect.succeed(offset) : Effect.forEach(updates, (raw) =>
          inboundOf(raw, identity.audience).pipe(
            Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (update) => inbox.accept(update) }))
          ), { concurrency: "unbounded", discard: true }).pipe(
            // The poll that fetched them is the trace their turns join (as a webhook request's is).
            Effect.withSpan("UpdateSource.poll", { root: true, attributes: { updates: updates.length } }),
            Effect.as(updates.reduce((next, u) => Math.max(next, u.update_id + 1), offset))
          )
      ),
      Effect.tapError((error) => Effect.logWarning("polling failed, retrying", error.message)),
      Effect.retry(pollRetry),
      Effect.orDie,
      Effect.flatMap((next) => poll(next))
    )

  yield* Effect.forkScoped(
    telegram.deleteWebhook.pipe(
      Effect.tapError((error) => Effect.logWarning("cannot reach Telegram to start polling, retrying", error.message)),
      Effect.retry(pollRetry),
      Effect.andThen(Effect.logInfo("long polling for updates (PUBLIC_URL is not set)")),
      Effect.andThen(poll(0)),
      Effect.orDie
    )
  )
}))
