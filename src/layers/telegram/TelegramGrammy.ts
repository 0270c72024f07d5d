import { Api, GrammyError, HttpError } from "grammy"
import { Duration, Effect, identity, Layer, Metric, Redacted, Schedule } from "effect"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { retryAfterBackoff } from "../../services/platform/Backoff.ts"
import { telegramApiErrors } from "../../services/platform/Metrics.ts"
import { SendBudget } from "../../services/telegram/SendBudget.ts"
import {
  type BotCommand,
  type Button,
  ChatMigrated,
  isTransient,
  maxWaitSeconds,
  MessageGone,
  RejectedFormatting,
  type SendOptions,
  Telegram,
  TelegramApiError,
  type TelegramError,
  UnreachableChat
} from "../../services/telegram/Telegram.ts"

/** Longest wait for one Bot API answer (getUpdates adds its long-poll timeout). */
const callTimeout = Duration.seconds(15)

/** The updates the bot reads; Telegram sends no others (setWebhook / getUpdates allowed_updates). */
const allowedUpdates = ["message", "my_chat_member", "callback_query", "stopped_message_generation"] as const

// grammY types its signal with the abort-controller shim; at run time it is the platform's own.
type GrammySignal = Parameters<Api["getMe"]>[0]

const waitable = (error: TelegramError) =>
  error._tag === "TelegramApiError" && (error.retryAfterSeconds ?? 0) <= maxWaitSeconds

/** 300 ms doubling with jitter, at least a 429's retry_after, five retries at most. */
const backoff = retryAfterBackoff<TelegramError>({
  base: "300 millis",
  times: 5,
  retryAfterSeconds: (error) => (error._tag === "TelegramApiError" ? error.retryAfterSeconds : undefined)
})

/**
 * Idempotent calls (edits, typing, webhook calls): 429 (retry_after up to 30 s), 5xx and network
 * errors are retried on `backoff`. Other 4xx are permanent and never retried.
 */
export const telegramRetrySchedule = backoff.pipe(
  Schedule.while(({ input }) => waitable(input) && input._tag === "TelegramApiError" && isTransient(input))
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

/**
 * A network failure's inner error quotes the request URL, which holds the bot token (maybe
 * URL-encoded): the token's secret half is cut out wherever it appears.
 */
const scrubbed = (text: string, token: string): string => {
  const secret = token.slice(token.indexOf(":") + 1) || token
  return secret.length > 0 ? text.replaceAll(secret, "[redacted]") : text
}

/**
 * Telegram's description, as kept in errors (and so in logs and messages.error): its own fixed
 * form ("Bad Request: chat not found", "Forbidden: bot was blocked by the user"), its detail
 * up to 300 characters; anything else (a proxy's page, text quoting a token) becomes a fixed sentence with
 * the code (issue 9: a provider's free text is never kept).
 */
export const describeTelegram = (code: number, description: string): string =>
  /^[A-Z][A-Za-z ]{2,40}(: [\w .,;'"()/:=!?&#+-]{1,300})?$/.test(description) && !/\d{5,}:[\w-]{30,}/.test(description)
    ? description
    : `Telegram answered ${code} (its description is not kept)`

/**
 * grammY's error -> ours: Telegram's description, or for a network failure grammY's message and
 * the underlying reason (with the token cut out), so the log names the cause.
 */
const toTelegramError = (token: string) => (
  method: string,
  chatId: number | undefined,
  messageId: number | undefined,
  cause: unknown
): TelegramError => {
  if (cause instanceof GrammyError) {
    const message = describeTelegram(cause.error_code, cause.description)
    if (chatId !== undefined && isUnreachable(cause)) {
      return new UnreachableChat({ chatId, message })
    }
    const movedTo = cause.parameters.migrate_to_chat_id
    if (chatId !== undefined && movedTo !== undefined) {
      return new ChatMigrated({ chatId, toChatId: movedTo, message })
    }
    if (cause.error_code === 400 && /can't parse entities/i.test(cause.description)) {
      return new RejectedFormatting({ message })
    }
    if (messageId !== undefined && cause.error_code === 400 && /message to (edit|delete) not found|message can't be (edited|deleted)/i.test(cause.description)) {
      return new MessageGone({ messageId, message })
    }
    return new TelegramApiError({
      method,
      code: cause.error_code,
      ...(cause.parameters.retry_after !== undefined ? { retryAfterSeconds: cause.parameters.retry_after } : {}),
      message
    })
  }
  const inner = cause instanceof HttpError ? `: ${String(cause.error)}` : ""
  const text = cause instanceof Error ? `${cause.message}${inner}` : "network failure"
  return new TelegramApiError({ method, code: 0, message: scrubbed(text, token) })
}

const metricCode = (error: TelegramError) =>
  String(error._tag === "TelegramApiError" ? error.code : error._tag === "UnreachableChat" ? 403 : 400)

/** The message a call is about (edits and deletes), for MessageGone. */
interface Target {
  readonly chatId?: number
  readonly messageId?: number
}

const inlineButton = (button: Button) =>
  "url" in button ? { text: button.text, url: button.url } : { text: button.text, callback_data: button.data }

/** parse_mode, the buttons (one per row), and no link previews: the options every edit carries. */
const textOptions = (options?: SendOptions) => ({
  ...(options?.html ? { parse_mode: "HTML" as const } : {}),
  ...(options?.buttons && options.buttons.length > 0
    ? { reply_markup: { inline_keyboard: options.buttons.map((b) => [inlineButton(b)]) } }
    : {}),
  link_preview_options: { is_disabled: true }
})

/** A new message also goes to its topic, and replies to its question (even if that was deleted). */
const sendOptions = (options?: SendOptions) => ({
  ...textOptions(options),
  ...(options?.threadId !== undefined ? { message_thread_id: options.threadId } : {}),
  ...(options?.replyTo !== undefined
    ? { reply_parameters: { message_id: options.replyTo, allow_sending_without_reply: true } }
    : {})
})

/** grammY's `Api` on TELEGRAM_BOT_TOKEN and TELEGRAM_API_ROOT. */
export const layer = Layer.effect(
  Telegram,
  Effect.gen(function*() {
    const config = yield* AppConfig
    const budget = yield* SendBudget
    const token = Redacted.value(config.telegramBotToken)
    const api = new Api(token, { apiRoot: config.telegramApiRoot })
    const toError = toTelegramError(token)

    /** One Bot API call: its turn from the send budget, a timeout, the error's metric, then its retry schedule. */
    const call = <A>(
      method: string,
      { chatId, messageId }: Target,
      run: (signal: GrammySignal) => Promise<A>,
      options: { readonly timeout?: Duration.Duration; readonly retry?: boolean } = {}
    ) =>
      budget.awaitTurn(method, chatId).pipe(
        Effect.andThen(
          Effect.tryPromise({
            try: (signal) => run(signal as unknown as GrammySignal),
            catch: (cause) => toError(method, chatId, messageId, cause)
          }).pipe(
            Effect.timeoutOrElse({
              duration: options.timeout ?? callTimeout,
              orElse: () => Effect.fail(new TelegramApiError({ method, code: 0, message: `${method} timed out` }))
            }),
            // Only Telegram's own 429s: the budget's "wait longer than 30 s" must not extend the wait.
            Effect.tapError((error) =>
              error._tag === "TelegramApiError" && error.retryAfterSeconds !== undefined
                ? budget.rememberFloodWait(chatId, error.retryAfterSeconds)
                : Effect.void
            )
          )
        ),
        Effect.tapError((error) => Metric.update(Metric.withAttributes(telegramApiErrors, { method, code: metricCode(error) }), 1)),
        options.retry === false
          ? identity
          : Effect.retry(method === "sendMessage" ? telegramSendRetrySchedule : telegramRetrySchedule)
      )

    return Telegram.of({
      sendMessage: Effect.fn("Telegram.sendMessage")(function*(chatId: number, text: string, options?: SendOptions) {
        const sent = yield* call(
          "sendMessage",
          { chatId },
          (signal) => api.sendMessage(chatId, text, sendOptions(options), signal),
          { retry: options?.preview !== true }
        )
        return sent.message_id
      }),
      editMessageText: Effect.fn("Telegram.editMessageText")(
        function*(chatId: number, messageId: number, text: string, options?: SendOptions) {
          yield* call(
            "editMessageText",
            { chatId, messageId },
            (signal) =>
              api.editMessageText(chatId, messageId, text, textOptions(options), signal),
            { retry: options?.preview !== true }
          ).pipe(
            Effect.catchIf(
              (error) => error._tag === "TelegramApiError" && /message is not modified/i.test(error.message),
              () => Effect.void
            )
          )
        }
      ),
      sendDraft: Effect.fn("Telegram.sendDraft")(
        function*(chatId: number, draftId: number, text: string, options?: { threadId?: number; canStop?: boolean }) {
          yield* call(
            "sendMessageDraft",
            { chatId },
            (signal) =>
              api.sendMessageDraft(chatId, draftId, text, {
                ...(options?.threadId !== undefined ? { message_thread_id: options.threadId } : {}),
                ...(options?.canStop === true ? { can_stop: true } : {})
              }, signal),
            { retry: false }
          )
        }
      ),
      deleteMessage: Effect.fn("Telegram.deleteMessage")(function*(chatId: number, messageId: number) {
        yield* call("deleteMessage", { chatId, messageId }, (signal) => api.deleteMessage(chatId, messageId, signal))
      }),
      sendTyping: Effect.fn("Telegram.sendTyping")(function*(chatId: number, threadId?: number) {
        yield* call(
          "sendChatAction",
          { chatId },
          (signal) =>
            api.sendChatAction(chatId, "typing", threadId !== undefined ? { message_thread_id: threadId } : undefined, signal)
        )
      }),
      answerCallbackQuery: Effect.fn("Telegram.answerCallbackQuery")(function*(callbackQueryId: string, text: string) {
        // Telegram forgets a query after a few seconds: one try, a late answer is useless.
        yield* call("answerCallbackQuery", {}, (signal) => api.answerCallbackQuery(callbackQueryId, { text }, signal), {
          retry: false
        })
      }),
      setMyCommands: Effect.fn("Telegram.setMyCommands")(function*(commands: ReadonlyArray<BotCommand>) {
        yield* call("setMyCommands", {}, (signal) => api.setMyCommands([...commands], undefined, signal))
      }),
      setWebhook: Effect.fn("Telegram.setWebhook")(function*(url: string, secret: Redacted.Redacted) {
        yield* call(
          "setWebhook",
          {},
          (signal) => api.setWebhook(url, { secret_token: Redacted.value(secret), allowed_updates: allowedUpdates }, signal)
        )
      }),
      deleteWebhook: call("deleteWebhook", {}, (signal) => api.deleteWebhook(undefined, signal)).pipe(
        Effect.asVoid,
        Effect.withSpan("Telegram.deleteWebhook")
      ),
      getChatMember: Effect.fn("Telegram.getChatMember")(function*(chatId: number, userId: number) {
        // A read, not a write to the chat: no chat pace.
        const member = yield* call("getChatMember", {}, (signal) => api.getChatMember(chatId, userId, signal))
        return member.status
      }),
      getMe: call("getMe", {}, (signal) => api.getMe(signal)).pipe(
        Effect.flatMap((me) =>
          me.username === undefined
            ? Effect.fail(new TelegramApiError({ method: "getMe", code: 0, message: "the bot has no username" }))
            : Effect.succeed({ id: me.id, username: me.username })
        ),
        Effect.withSpan("Telegram.getMe")
      ),
      getUpdates: Effect.fn("Telegram.getUpdates")(function*(offset: number, timeoutSeconds: number) {
        return yield* call(
          "getUpdates",
          {},
          (signal) => api.getUpdates({ offset, timeout: timeoutSeconds, allowed_updates: allowedUpdates }, signal),
          { timeout: Duration.sum(Duration.seconds(timeoutSeconds), callTimeout) }
        )
      })
    })
  })
)
