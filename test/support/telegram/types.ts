/**
 * Data types shared by the fake's parts; all but `FormattedText` are public (re-exported by
 * FakeTelegram.ts).
 */
import type { Update } from "grammy/types"

/** A chat id as the bot sends it: a number, or "@username" for public channels. */
export type ChatId = number | string

export interface TelegramCall {
  readonly method: string
  readonly params: Readonly<Record<string, unknown>>
  /** `Date.now()` when the request arrived (before any simulated latency). */
  readonly at: number
  /** The call's `chat_id` (numeric strings are converted to numbers), if it has one. */
  readonly chatId: ChatId | undefined
  /** HTTP status of the answer (200 on success); absent while the call is still pending. */
  status?: number
  /** Telegram's error description when the call failed. */
  description?: string
}

/** A formatting entity, in Telegram's shape (offsets and lengths in UTF-16 code units). */
export interface FakeEntity {
  readonly type: string
  readonly offset: number
  readonly length: number
  readonly url?: string
  readonly language?: string
  readonly custom_emoji_id?: string
}

/** Visible text and its entities, as Telegram derives them from the sent text. */
export interface FormattedText {
  readonly text: string
  readonly entities: Array<FakeEntity>
}

export interface FakeMessage {
  readonly chat_id: ChatId
  readonly message_id: number
  /** Visible text: tags stripped, HTML entities decoded. */
  readonly text: string
  /** The text exactly as the bot sent it. */
  readonly raw: string
  /** Same as `raw` when `parse_mode` is "HTML", otherwise undefined. */
  readonly html: string | undefined
  readonly parse_mode: string | undefined
  /** Entities parsed from HTML, or the `entities` the bot passed explicitly. */
  readonly entities: ReadonlyArray<FakeEntity>
  readonly reply_markup: unknown
  /** The forum topic (or thread) the message was sent to. */
  readonly message_thread_id: number | undefined
  /** From `reply_parameters.message_id` (or the legacy `reply_to_message_id`). */
  readonly reply_to_message_id: number | undefined
  /** Unix time in seconds. */
  readonly date: number
  readonly edit_date: number | undefined
  /** How many successful editMessageText calls changed this message. */
  readonly edit_count: number
}

export interface FakeDraft {
  readonly chat_id: ChatId
  readonly draft_id: number
  readonly message_thread_id: number | undefined
  readonly text: string
  readonly raw: string
  readonly parse_mode: string | undefined
  readonly entities: ReadonlyArray<FakeEntity>
  /** The user is shown a stop button (a press arrives as `stopped_message_generation`). */
  readonly can_stop: boolean
  /** The draft stays visible for a while after the stop button is pressed. */
  readonly keep_on_stop: boolean
}

export type TelegramFault =
  | { readonly code: 429; readonly retryAfter: number }
  | { readonly code: 500 | 502; readonly description?: string }
  | { readonly code: 400 | 403; readonly description: string }
  /** The connection is closed without an answer (a network failure, as the client sees it). */
  | { readonly drop: true }

/** A call that arrived while its chat (or the whole bot) was still under a 429 retry_after. */
export interface RateViolation {
  readonly method: string
  /** The call's chat, or undefined when the block was the global one (calls without a chat). */
  readonly chatId: ChatId | undefined
  readonly at: number
  readonly blockedUntil: number
  readonly earlyByMs: number
}

export interface FakeTelegramOptions {
  readonly token?: string
  /** Upper bound for one long-polling getUpdates wait, whatever `timeout` the client asks. Default 10 s. */
  readonly maxPollSeconds?: number
}

export interface WebhookState {
  readonly url: string
  readonly secret_token: string | undefined
  readonly allowed_updates: unknown
  readonly max_connections: number | undefined
}

/** An update to queue or post: `update_id` may be left for the fake to assign. */
export type NewUpdate = Omit<Update, "update_id"> & { update_id?: number }
