import { Clock, Context, Duration, Effect, Layer, Semaphore } from "effect"
import { floodWaitError, maxWaitSeconds, type TelegramApiError } from "./Telegram.ts"

/** Telegram delivers about 30 messages a second per bot, then answers 429: sends, edits and drafts are spaced to that. */
export const sendsPerSecond = 30
const pacedMethods = new Set(["sendMessage", "editMessageText", "sendMessageDraft"])
/** Past this many remembered flood waits, the ones that passed are dropped. */
const pruneAbove = 10_000

/**
 * When the bot may call Telegram: the global send pace, and each chat's flood wait (after a 429
 * for a chat, nothing is sent to it before retry_after passes, whoever sends). Time comes from
 * the Clock. This layer paces one process; a Redis-shared pacer can implement the same service.
 */
export class SendPacer extends Context.Service<SendPacer, {
  /**
   * Waits until `method` may be called for `chatId` (undefined: not chat-bound): sits out the
   * rest of the chat's flood wait, or fails at once with TelegramApiError 429 when more than 30 s
   * are left; then, for sends, edits and drafts, waits for a slot of the global pace.
   */
  readonly awaitTurn: (method: string, chatId: number | undefined) => Effect.Effect<void, TelegramApiError>
  /** Remembers a 429's retry_after (seconds) for the chat. */
  readonly rememberFloodWait: (chatId: number, seconds: number) => Effect.Effect<void>
  /** Seconds left of the chat's flood wait, 0 when it may be written to now. */
  readonly floodWaitSeconds: (chatId: number) => Effect.Effect<number>
  /** True while a second or more of sends waits for the pace: optional sends (previews) should give way. */
  readonly congested: Effect.Effect<boolean>
}>()("bot/SendPacer") {
  static readonly layer = Layer.effect(
    SendPacer,
    Effect.gen(function*() {
      const notBefore = new Map<number, number>()
      // Sends pass one at a time, each at least 1/30 s after the previous one actually went, so a
      // stalled event loop cannot release a burst afterwards.
      const pace = yield* Semaphore.make(1)
      let lastSendAt = Number.NEGATIVE_INFINITY
      let waitingSends = 0
      const paced = Effect.suspend(() => {
        waitingSends++
        return pace.withPermits(1)(Effect.gen(function*() {
          const wait = lastSendAt + 1000 / sendsPerSecond - (yield* Clock.currentTimeMillis)
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
          lastSendAt = yield* Clock.currentTimeMillis
        }))
      }).pipe(Effect.ensuring(Effect.sync(() => waitingSends--)))

      /** What is left of the chat's flood wait (ms); a passed one is forgotten. */
      const floodWaitMillis = (chatId: number) =>
        Clock.currentTimeMillis.pipe(Effect.map((now) => {
          const left = (notBefore.get(chatId) ?? now) - now
          if (left <= 0) notBefore.delete(chatId)
          return Math.max(0, left)
        }))

      return SendPacer.of({
        awaitTurn: Effect.fn("SendPacer.awaitTurn")(function*(method: string, chatId: number | undefined) {
          if (chatId !== undefined) {
            const left = yield* floodWaitMillis(chatId)
            const seconds = Math.ceil(left / 1000)
            if (seconds > maxWaitSeconds) return yield* floodWaitError(method, seconds)
            if (left > 0) yield* Effect.sleep(Duration.millis(left))
          }
          if (pacedMethods.has(method)) yield* paced
        }),
        rememberFloodWait: Effect.fn("SendPacer.rememberFloodWait")(function*(chatId: number, seconds: number) {
          const now = yield* Clock.currentTimeMillis
          // Passed waits are dropped when their chat is next called; this bounds the rest.
          if (notBefore.size > pruneAbove) for (const [id, until] of notBefore) if (until <= now) notBefore.delete(id)
          notBefore.set(chatId, now + seconds * 1000)
        }),
        floodWaitSeconds: Effect.fn("SendPacer.floodWaitSeconds")(function*(chatId: number) {
          return Math.ceil((yield* floodWaitMillis(chatId)) / 1000)
        }),
        congested: Effect.sync(() => waitingSends >= sendsPerSecond).pipe(Effect.withSpan("SendPacer.congested"))
      })
    })
  )
}
