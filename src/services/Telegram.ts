import { Api, GrammyError } from "grammy"
import type { Update } from "grammy/types"
import { Clock, Context, Duration, Effect, identity, Layer, Metric, Redacted, Schedule, Schema, Semaphore } from "effect"
import { AppConfig } from "./AppConfig.ts"
import { telegramApiErrors } from "./Metrics.ts"

/** 403 blocked / deactivated, 400 chat not found: retrying cannot help, the chat is gone for us. */
export class UnreachableChat extends Schema.TaggedError<UnreachableChat>()("UnreachableChat", {
  chatId: Schema.Number,
  message: Schema.String
}) {}

/** 400 "can't parse entities": the formatting was refused; the caller resends as plain text. */
export class RejectedFormatting extends Schema.TaggedError<RejectedFormatting>()("RejectedFormatting", {
  message: Schema.String
}) {}

/** Any other failure, after the retry schedule gave up. */
export class TelegramApiError extends Schema.TaggedError<TelegramApiError>()("TelegramApiError", {
  method: Schema.String,
  code: Schema.Number,
  retryAfterSeconds: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

export type TelegramError = UnreachableChat | RejectedFormatting | TelegramApiError

/** Telegram away or asking to wait, rather than refusing the request: worth trying again later. */
export const isTransient = (error: TelegramApiError): boolean =>
  error.code === 0 || error.code === 429 || error.code >= 500

export interface SendOptions {
  readonly html?: boolean
  /** A preview: tried once, never retried (the next one comes a second later). */
  readonly preview?: boolean
}

const callTimeout = Duration.seconds(15)

/** Telegram delivers about 30 messages a second per bot: sends, edits and drafts are spaced to that. */
const sendsPerSecond = 30
const pacedMethods = new Set(["sendMessage", "editMessageText", "sendMessageDraft"])

// grammY types its signal with the abort-controller shim; at run time it is the platform's own.
type GrammySignal = Parameters<Api["getMe"]>[0]

/**
 * The longest flood wait sat out in place. A longer retry_after fails the call instead, so a
 * turn does not hold its chat and its worker slot for minutes: the message is redone later.
 */
export const maxWaitSeconds = 30

const backoff = Schedule.exponential("300 millis").pipe(
  Schedule.jittered,
  Schedule.modifyDelay(({ input, duration }: { input: TelegramError; duration: Duration.Duration }) =>
    Effect.succeed(
      input._tag === "TelegramApiError" && input.retryAfterSeconds !== undefined
        ? Duration.max(Duration.seconds(input.retryAfterSeconds), duration)
        : duration
    )
  ),
  Schedule.upTo({ times: 5 })
)

/** The error for a chat whose flood wait is too long to sit out. */
export const floodWaitError = (method: string, retryAfterSeconds: number) =>
  new TelegramApiError({ method, code: 429, retryAfterSeconds, message: "flood wait in progress" })

const waitable = (error: TelegramError) =>
  error._tag === "TelegramApiError" && (error.retryAfterSeconds ?? 0) <= maxWaitSeconds

/**
 * Idempotent calls (edits, typing, webhook calls): honour 429's retry_after, back off
 * exponentially with jitter on 5xx and network errors, 5 retries at most. Other 4xx are
 * permanent and never retried.
 */
export const telegramRetrySchedule = backoff.pipe(
  Schedule.while(({ input }) => waitable(input) && (input._tag === "TelegramApiError" && isTransient(input)))
)

/**
 * sendMessage: retried only when Telegram said it did not send (429, 5xx). After a timeout or
 * a dropped connection the message may have gone out, and a retry would send it twice.
 */
export const telegramSendRetrySchedule = backoff.pipe(
  Schedule.while(({ input }) => waitable(input) && input._tag === "TelegramApiError" && input.code !== 0 && isTransient(input))
)

const isUnreachable = (error: GrammyError) =>
  error.error_code === 403 || (error.error_code === 400 && /chat not found|user is deactivated|PEER_ID_INVALID/i.test(error.description))

const toTelegramError = (method: string, chatId: number | undefined, cause: unknown): TelegramError => {
  if (cause instanceof GrammyError) {
    if (chatId !== undefined && isUnreachable(cause)) {
      return new UnreachableChat({ chatId, message: cause.description })
    }
    if (cause.error_code === 400 && /can't parse entities/i.test(cause.description)) {
      return new RejectedFormatting({ message: cause.description })
    }
    return new TelegramApiError({
      method,
      code: cause.error_code,
      ...(cause.parameters.retry_after !== undefined ? { retryAfterSeconds: cause.parameters.retry_after } : {}),
      message: cause.description
    })
  }
  // Network failures and timeouts: grammY's HttpError message names the method, never the token.
  return new TelegramApiError({ method, code: 0, message: cause instanceof Error ? cause.message : String(cause) })
}

export class Telegram extends Context.Service<Telegram, {
  readonly sendMessage: (chatId: number, text: string, options?: SendOptions) => Effect.Effect<number, TelegramError>
  /** Succeeds when the message already shows exactly this text ("message is not modified"). */
  readonly editMessageText: (
    chatId: number,
    messageId: number,
    text: string,
    options?: SendOptions
  ) => Effect.Effect<void, TelegramError>
  readonly deleteMessage: (chatId: number, messageId: number) => Effect.Effect<void, TelegramError>
  /**
   * Streams a preview into a private chat as an animated draft (Bot API 9.3+): ephemeral, shown
   * for 30 s, replaced by the real message. Tried once, like every preview.
   */
  readonly sendDraft: (chatId: number, draftId: number, text: string) => Effect.Effect<void, TelegramError>
  /** True while a second or more of sends waits for the bot's pace: optional sends should wait out. */
  readonly congested: Effect.Effect<boolean>
  /** Seconds left of the chat's flood wait (after a 429), 0 when it may be written to now. */
  readonly floodWaitSeconds: (chatId: number) => Effect.Effect<number>
  readonly sendTyping: (chatId: number) => Effect.Effect<void, TelegramError>
  readonly setWebhook: (url: string, secret: Redacted.Redacted) => Effect.Effect<void, TelegramError>
  readonly deleteWebhook: Effect.Effect<void, TelegramError>
  readonly getUpdates: (offset: number, timeoutSeconds: number) => Effect.Effect<ReadonlyArray<Update>, TelegramError>
}>()("bot/Telegram") {
  static readonly layer = Layer.effect(
    Telegram,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const api = new Api(Redacted.value(config.telegramBotToken), { apiRoot: config.telegramApiRoot })
      // After a 429 for a chat nothing is sent to it before retry_after passes, whoever sends.
      const notBefore = new Map<number, number>()
      // Sends and edits pass one at a time, each at least 1/30 s after the previous one actually
      // went, so a stalled event loop cannot release a burst afterwards (this process's share).
      const pace = yield* Semaphore.make(1)
      let lastSendAt = 0
      let waitingSends = 0
      const paced = Effect.suspend(() => {
        waitingSends++
        return pace.withPermits(1)(Effect.gen(function*() {
          const wait = lastSendAt + 1000 / sendsPerSecond - (yield* Clock.currentTimeMillis)
          if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
          lastSendAt = yield* Clock.currentTimeMillis
        }))
      }).pipe(Effect.ensuring(Effect.sync(() => waitingSends--)))

      /** What is left of the chat's flood wait; a passed one is forgotten. */
      const floodWaitMillis = (chatId: number) =>
        Clock.currentTimeMillis.pipe(Effect.map((now) => {
          const left = (notBefore.get(chatId) ?? now) - now
          if (left <= 0) notBefore.delete(chatId)
          return Math.max(0, left)
        }))

      /** Sits out the rest of a chat's flood wait, or fails at once if it is too long to sit out. */
      const waitTurn = (method: string, chatId: number | undefined) =>
        chatId === undefined ? Effect.void : floodWaitMillis(chatId).pipe(
          Effect.flatMap((left) => {
            const seconds = Math.ceil(left / 1000)
            if (seconds > maxWaitSeconds) return Effect.fail(floodWaitError(method, seconds))
            return left > 0 ? Effect.sleep(Duration.millis(left)) : Effect.void
          })
        )

      const rememberFloodWait = (chatId: number, seconds: number) =>
        Clock.currentTimeMillis.pipe(Effect.map((now) => {
          // Passed waits are dropped when their chat is next called; this bounds the rest.
          if (notBefore.size > 10_000) for (const [id, until] of notBefore) if (until <= now) notBefore.delete(id)
          notBefore.set(chatId, now + seconds * 1000)
        }))

      const call = <A>(
        method: string,
        chatId: number | undefined,
        run: (signal: GrammySignal) => Promise<A>,
        options: { readonly timeout?: Duration.Duration; readonly retry?: boolean } = {}
      ) =>
        waitTurn(method, chatId).pipe(
          Effect.andThen(pacedMethods.has(method) ? paced : Effect.void),
          Effect.andThen(
            Effect.tryPromise({
              try: (signal) => run(signal as unknown as GrammySignal),
              catch: (cause) => toTelegramError(method, chatId, cause)
            }).pipe(
              Effect.timeoutOrElse({
                duration: options.timeout ?? callTimeout,
                orElse: () => Effect.fail(new TelegramApiError({ method, code: 0, message: `${method} timed out` }))
              })
            )
          ),
          Effect.tapError((error) =>
            Effect.gen(function*() {
              const code = error._tag === "TelegramApiError" ? error.code : error._tag === "UnreachableChat" ? 403 : 400
              yield* Metric.update(Metric.withAttributes(telegramApiErrors, { method, code: String(code) }), 1)
              if (error._tag === "TelegramApiError" && error.retryAfterSeconds !== undefined && chatId !== undefined) {
                yield* rememberFloodWait(chatId, error.retryAfterSeconds)
              }
            })
          ),
          options.retry === false
            ? identity
            : Effect.retry(method === "sendMessage" ? telegramSendRetrySchedule : telegramRetrySchedule)
        )

      const parseMode = (options?: SendOptions) => (options?.html ? { parse_mode: "HTML" as const } : {})

      return Telegram.of({
        congested: Effect.sync(() => waitingSends >= sendsPerSecond),
        floodWaitSeconds: (chatId: number) => floodWaitMillis(chatId).pipe(Effect.map((left) => Math.ceil(left / 1000))),
        sendMessage: Effect.fn("Telegram.sendMessage")(function*(chatId: number, text: string, options?: SendOptions) {
          const sent = yield* call(
            "sendMessage",
            chatId,
            (signal) =>
              api.sendMessage(chatId, text, { ...parseMode(options), link_preview_options: { is_disabled: true } }, signal),
            { retry: options?.preview !== true }
          )
          return sent.message_id
        }),
        editMessageText: Effect.fn("Telegram.editMessageText")(
          function*(chatId: number, messageId: number, text: string, options?: SendOptions) {
            yield* call(
              "editMessageText",
              chatId,
              (signal) =>
                api.editMessageText(
                  chatId,
                  messageId,
                  text,
                  { ...parseMode(options), link_preview_options: { is_disabled: true } },
                  signal
                ),
              { retry: options?.preview !== true }
            ).pipe(
              Effect.catchIf(
                (error) => error._tag === "TelegramApiError" && /message is not modified/i.test(error.message),
                () => Effect.void
              )
            )
          }
        ),
        sendDraft: Effect.fn("Telegram.sendDraft")(function*(chatId: number, draftId: number, text: string) {
          yield* call(
            "sendMessageDraft",
            chatId,
            (signal) => api.sendMessageDraft(chatId, draftId, text, undefined, signal),
            { retry: false }
          )
        }),
        deleteMessage: Effect.fn("Telegram.deleteMessage")(function*(chatId: number, messageId: number) {
          yield* call("deleteMessage", chatId, (signal) => api.deleteMessage(chatId, messageId, signal))
        }),
        sendTyping: Effect.fn("Telegram.sendTyping")(function*(chatId: number) {
          yield* call("sendChatAction", chatId, (signal) => api.sendChatAction(chatId, "typing", undefined, signal))
        }),
        setWebhook: Effect.fn("Telegram.setWebhook")(function*(url: string, secret: Redacted.Redacted) {
          yield* call(
            "setWebhook",
            undefined,
            (signal) =>
              api.setWebhook(
                url,
                { secret_token: Redacted.value(secret), allowed_updates: ["message", "my_chat_member"] },
                signal
              )
          )
        }),
        deleteWebhook: call("deleteWebhook", undefined, (signal) => api.deleteWebhook(undefined, signal)).pipe(
          Effect.asVoid,
          Effect.withSpan("Telegram.deleteWebhook")
        ),
        getUpdates: (offset: number, timeoutSeconds: number) =>
          call(
            "getUpdates",
            undefined,
            (signal) =>
              api.getUpdates({ offset, timeout: timeoutSeconds, allowed_updates: ["message", "my_chat_member"] }, signal),
            { timeout: Duration.sum(Duration.seconds(timeoutSeconds), callTimeout) }
          )
      })
    })
  )
}
