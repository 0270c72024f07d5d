import { Effect, Layer, Option, Schedule } from "effect"
import { inboundOf } from "../../schema/telegram/TelegramUpdate.ts"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { Inbox } from "../../services/chat/Inbox.ts"
import { BotIdentity } from "../../services/telegram/BotIdentity.ts"
import { isTransient, Telegram, type TelegramError } from "../../services/telegram/Telegram.ts"

const pollTimeoutSeconds = 25
/** Telegram or the database away: back off, at most 30 s between tries, forever. */
const pollRetry = Schedule.min([Schedule.exponential("1 second"), Schedule.spaced("30 seconds")])
const registerRetry = Schedule.min([Schedule.exponential("2 seconds"), Schedule.spaced("1 minute")])

/**
 * Where updates come from. With PUBLIC_URL: Telegram posts them to /telegram/webhook, and this
 * registers that URL with the secret at start. Without: long polling with getUpdates, each
 * update going through the same Inbox as the webhook's, the offset moving only once stored.
 */
export const UpdateSourceLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  const telegram = yield* Telegram
  const inbox = yield* Inbox
  const identity = yield* BotIdentity

  if (Option.isSome(config.publicUrl) && Option.isSome(config.telegramWebhookSecret)) {
    const url = `${config.publicUrl.value}/telegram/webhook`
    // Telegram away: keep trying. Telegram refusing (bad token, URL it will not call): say so once.
    const register = telegram.setWebhook(url, config.telegramWebhookSecret.value).pipe(
      Effect.tap(() => Effect.logInfo("webhook registered", { url })),
      Effect.tapError((error) => Effect.logWarning("webhook registration failed", error.message)),
      Effect.retry(
        registerRetry.pipe(
          Schedule.while(({ input }: { input: TelegramError }) => input._tag === "TelegramApiError" && isTransient(input))
        )
      ),
      Effect.catch((error) => Effect.logError("Telegram refused the webhook; fix the setting and restart", error.message))
    )
    yield* Effect.forkScoped(register)
    return
  }

  const poll = (offset: number): Effect.Effect<never> =>
    telegram.getUpdates(offset, pollTimeoutSeconds).pipe(
      Effect.flatMap((updates) =>
        Effect.forEach(updates, (raw) =>
          inboundOf(raw, identity.audience).pipe(
            Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (update) => inbox.accept(update) }))
          ), { concurrency: "unbounded", discard: true }).pipe(
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
