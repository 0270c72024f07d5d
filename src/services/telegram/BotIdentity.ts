import { Context, Duration, Effect, Exit, Layer } from "effect"
import type { Audience } from "../../schema/telegram/TelegramUpdate.ts"
import { commands } from "../chat/ChatTexts.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { StartupError } from "../platform/StartupError.ts"
import { Telegram, type TelegramError } from "./Telegram.ts"

/**
 * The bot itself, as Telegram knows it (getMe): asked at start, kept once it succeeds. The layer
 * fails with StartupError when Telegram refuses the token (401, or 404 for a malformed one).
 */
export class BotIdentity extends Context.Service<BotIdentity, {
  /** Its user id and username (without "@"). Fails with TelegramError while Telegram cannot be asked. */
  readonly me: Effect.Effect<{ readonly id: number; readonly username: string }, TelegramError>
  /** How group messages address it: its id and username, its commands, and GROUP_REPLY_MODE. */
  readonly audience: Effect.Effect<Audience, TelegramError>
  /** https://t.me/<username>: checkouts come back there, groups send people there. */
  readonly link: Effect.Effect<string, TelegramError>
}>()("bot/BotIdentity") {
  static readonly layer = Layer.effect(
    BotIdentity,
    Effect.gen(function*() {
      const { groupReplyMode } = yield* AppConfig
      const telegram = yield* Telegram
      // A failure is not kept: the next caller asks again.
      const me = yield* telegram.getMe.pipe(
        Effect.cachedWithTTL((exit) => (Exit.isSuccess(exit) ? Duration.infinity : Duration.zero))
      )
      // Asked at start: a token Telegram refuses stops the start; Telegram away does not (group
      // messages wait for it, and the next one asks again).
      const first = yield* Effect.result(me)
      if (first._tag === "Failure") {
        const error = first.failure
        if (error._tag === "TelegramApiError" && (error.code === 401 || error.code === 404)) {
          return yield* new StartupError({
            message: `Telegram refuses TELEGRAM_BOT_TOKEN (${error.code} ${error.message}): set the token @BotFather gave, whole.`
          })
        }
        yield* Effect.logWarning("cannot reach Telegram to check the bot token; starting anyway").pipe(
          Effect.annotateLogs({ error: error.message })
        )
      }
      return BotIdentity.of({
        me,
        audience: Effect.map(me, ({ id, username }) => ({ botId: id, username, commands, groupReplyMode })),
        link: Effect.map(me, ({ username }) => `https://t.me/${username}`)
      })
    })
  )
}
