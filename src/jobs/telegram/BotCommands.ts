import { Effect, Layer, Schedule } from "effect"
import { commandMenu } from "../../services/chat/ChatTexts.ts"
import { isTransient, Telegram, type TelegramError } from "../../services/telegram/Telegram.ts"

/** Telegram away at start: try again, at most a minute apart, until it answers. */
const menuRetry = Schedule.min([Schedule.exponential("2 seconds"), Schedule.spaced("1 minute")])

/**
 * Publishes the bot's command menu (setMyCommands) at start, so Telegram's clients offer the
 * commands the bot has. English only: the bot's texts are not translated yet.
 */
export const BotCommandsLive = Layer.effectDiscard(Effect.gen(function*() {
  const telegram = yield* Telegram
  yield* Effect.forkScoped(
    telegram.setMyCommands(commandMenu).pipe(
      Effect.retry(menuRetry.pipe(
        Schedule.while(({ input }: { input: TelegramError }) => input._tag === "TelegramApiError" && isTransient(input))
      )),
      Effect.catch((error) => Effect.logError("Telegram refused the command menu (setMyCommands)", error.message))
    )
  )
}))
