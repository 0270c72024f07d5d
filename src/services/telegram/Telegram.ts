import type { Update } from "grammy/types"
import { Context, type Effect, type Redacted, Schema } from "effect"

/** 403 blocked / deactivated, 400 chat not found: retrying cannot help, the chat is gone for us. */
export class UnreachableChat extends Schema.TaggedError<UnreachableChat>()("UnreachableChat", {
  chatId: Schema.Number,
  message: Schema.String
}) {}

/** 400 "can't parse entities": the formatting was refused; the caller resends as plain text. */
export class RejectedFormatting extends Schema.TaggedError<RejectedFormatting>()("RejectedFormatting", {
  message: Schema.String
}) {}

/** 400 "message to edit/delete not found", "message can't be edited": the user deleted it, or it is too old. */
export class MessageGone extends Schema.TaggedError<MessageGone>()("MessageGone", {
  messageId: Schema.Number,
  message: Schema.String
}) {}

/**
 * 400 with parameters.migrate_to_chat_id: the group was upgraded to a supergroup, which has a new
 * id (PROTOCOLS.md, Where a message belongs). The chat moves there and the reply is sent again.
 */
export class ChatMigrated extends Schema.TaggedError<ChatMigrated>()("ChatMigrated", {
  chatId: Schema.Number,
  toChatId: Schema.Number,
  message: Schema.String
}) {}

/**
 * Any other failure, after the retry schedule gave up. `code` is Telegram's error_code, or 0 for
 * a network failure or timeout; `message` is Telegram's description, or for a network failure
 * what the HTTP client said, with the token cut out.
 */
export class TelegramApiError extends Schema.TaggedError<TelegramApiError>()("TelegramApiError", {
  method: Schema.String,
  code: Schema.Number,
  retryAfterSeconds: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

export type TelegramError = UnreachableChat | RejectedFormatting | MessageGone | ChatMigrated | TelegramApiError

/** Telegram away or asking to wait, rather than refusing the request: worth trying again later. */
export const isTransient = (error: TelegramApiError): boolean =>
  error.code === 0 || error.code === 429 || error.code >= 500

/**
 * The longest flood wait (429 retry_after, seconds) sat out in place. A longer one fails the call
 * instead, so a turn does not hold its chat and its worker slot for minutes: it is redone later.
 */
export const maxWaitSeconds = 30

/** The error for a call to a chat whose flood wait is too long to sit out. */
export const floodWaitError = (method: string, retryAfterSeconds: number) =>
  new TelegramApiError({ method, code: 429, retryAfterSeconds, message: "flood wait in progress" })

/** A button under a message that opens a URL (an inline keyboard's url button). */
/** A chat member's status (Bot API, ChatMember). */
export type ChatMemberStatus = "creator" | "administrator" | "member" | "restricted" | "left" | "kicked"

export interface UrlButton {
  readonly text: string
  readonly url: string
}

/** A button under a message that sends `data` (1-64 bytes) back as a callback_query. */
export interface CallbackButton {
  readonly text: string
  readonly data: string
}

export type Button = UrlButton | CallbackButton

/** A command in the bot's menu (setMyCommands): 1-32 chars of a-z, 0-9 and _, and a 1-256 char description. */
export interface BotCommand {
  readonly command: string
  readonly description: string
}

/** Where in a chat a message goes, and what it answers. */
export interface Placement {
  /** The forum topic (message_thread_id); absent: General, or a chat without topics. */
  readonly threadId?: number
  /** The message it replies to (reply_parameters; sent anyway if that message is gone). */
  readonly replyTo?: number
}

export interface SendOptions extends Placement {
  /** parse_mode HTML (Telegram's subset: see TelegramMarkdown.ts). */
  readonly html?: boolean
  /** A preview: tried once, never retried (the next one comes a second later). */
  readonly preview?: boolean
  /** Buttons under the message, one per row. */
  readonly buttons?: ReadonlyArray<Button>
}

/**
 * The Bot API calls the bot makes (https://core.telegram.org/bots/api). Implementations:
 * `layers/telegram/TelegramGrammy.ts` (grammY's Api on TELEGRAM_API_ROOT: every call has a
 * timeout and a declared retry schedule, honours 429 retry_after and waits for its turn of the SendBudget)
 * and `TelegramMemory.ts` (in-memory chats and scripted failures, for service tests).
 */
export class Telegram extends Context.Service<Telegram, {
  /** Sends `text` (1-4096 UTF-16 units after entity parsing) to the chat; returns its message_id. */
  readonly sendMessage: (chatId: number, text: string, options?: SendOptions) => Effect.Effect<number, TelegramError>
  /**
   * Replaces a message's text; succeeds when it already shows exactly this text ("message is not
   * modified"). MessageGone when the message no longer exists or can no longer be edited.
   */
  readonly editMessageText: (
    chatId: number,
    messageId: number,
    text: string,
    options?: SendOptions
  ) => Effect.Effect<void, TelegramError>
  /** MessageGone when it is already gone. */
  readonly deleteMessage: (chatId: number, messageId: number) => Effect.Effect<void, TelegramError>
  /**
   * Streams a preview into a private chat as an animated draft (Bot API 9.3+): ephemeral, shown
   * for 30 s, replaced by the real message. Tried once, like every preview. `canStop` shows the
   * user a stop button (Bot API 10.3): pressed, it comes back as a stopped_message_generation update.
   */
  readonly sendDraft: (
    chatId: number,
    draftId: number,
    text: string,
    options?: { readonly threadId?: number; readonly canStop?: boolean }
  ) => Effect.Effect<void, TelegramError>
  /** "typing…" for about 5 s, or until the next message, in the topic when given. */
  readonly sendTyping: (chatId: number, threadId?: number) => Effect.Effect<void, TelegramError>
  /** Answers a button press (callback_query) with a short notice shown to the presser. */
  readonly answerCallbackQuery: (callbackQueryId: string, text: string) => Effect.Effect<void, TelegramError>
  /** The bot's command menu, for everyone (the default scope and language). */
  readonly setMyCommands: (commands: ReadonlyArray<BotCommand>) => Effect.Effect<void, TelegramError>
  /**
   * Asks Telegram to POST updates to `url` with `secret` in X-Telegram-Bot-Api-Secret-Token,
   * only the kinds the bot reads (allowed_updates).
   */
  readonly setWebhook: (url: string, secret: Redacted.Redacted) => Effect.Effect<void, TelegramError>
  /** Stops webhook delivery, so getUpdates may be used. */
  readonly deleteWebhook: Effect.Effect<void, TelegramError>
  /** A member's status in a group (getChatMember): "creator" and "administrator" may manage it. */
  readonly getChatMember: (chatId: number, userId: number) => Effect.Effect<ChatMemberStatus, TelegramError>
  /** The bot itself (getMe): its user id and username, as `@username` mentions and t.me links use it. */
  readonly getMe: Effect.Effect<{ readonly id: number; readonly username: string }, TelegramError>
  /** Long polling: waits up to `timeoutSeconds` for updates from `offset` on. */
  readonly getUpdates: (offset: number, timeoutSeconds: number) => Effect.Effect<ReadonlyArray<Update>, TelegramError>
}>()("bot/Telegram") {}
