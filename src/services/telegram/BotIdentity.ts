import { Context, Duration, Effect, Exit, Layer } from "effect"
import type { Audience } from "../../schema/telegram/TelegramUpdate.ts"
import { commands } from "../chat/ChatTexts.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { Telegram, type TelegramError } from "./Telegram.ts"

/** The bot itself, as Telegram knows it (getMe): asked once it succeeds, then kept. */
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
      // Learned at start, so the first group message does not wait for it; a wrong token shows here.
      yield* Effect.forkScoped(me.pipe(
        Effect.tapError((error) =>
          Effect.logError(
            error._tag === "TelegramApiError" && error.code === 401
              ? "Telegram refuses the bot token (TELEGRAM_BOT_TOKEN)"
              : "cannot learn the bot's identity (getMe); group messages wait for it",
            error.message
          )
        ),
        Effect.ignore
      ))
      return BotIdentity.of({
        me,
        audience: Effect.map(me, ({ id, username }) => ({ botId: id, username, commands, groupReplyMode })),
        link: Effect.map(me, ({ username }) => `https://t.me/${username}`)
      })
    })
  )
}
