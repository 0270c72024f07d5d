/**
 * Bot API conventions shared by the fake's parts: method names, errors in Telegram's shape and
 * the way parameters are read.
 */
import type { ResponseParameters } from "grammy/types"
import type { ChatId, TelegramCall } from "./types.ts"

export const DEFAULT_TOKEN = "123456:TEST-TOKEN"

const METHODS = [
  "getMe",
  "setWebhook",
  "deleteWebhook",
  "getWebhookInfo",
  "getUpdates",
  "sendMessage",
  "editMessageText",
  "sendChatAction",
  "sendMessageDraft",
  "deleteMessage",
  "setMyCommands",
  "getMyCommands",
  "answerCallbackQuery",
  "getChatMember"
] as const
export type Method = (typeof METHODS)[number]

// Telegram method names are case-insensitive.
export const METHOD_BY_LOWERCASE = new Map<string, Method>(METHODS.map((m) => [m.toLowerCase(), m]))

export type Params = Record<string, unknown>

/** An API error answered in Telegram's shape; `parameters` carries retry_after or migrate_to_chat_id. */
export class TelegramError extends Error {
  readonly code: number
  readonly parameters: ResponseParameters | undefined
  constructor(code: number, description: string, parameters?: ResponseParameters) {
    super(description)
    this.code = code
    this.parameters = parameters
  }
}

export const badRequest = (what: string) => new TelegramError(400, `Bad Request: ${what}`)

/** Numeric strings become numbers so `chat_id: "42"` and `42` are the same chat. */
export function normalizeChatId(value: unknown): ChatId | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value
  if (typeof value === "string" && value !== "") return /^-?\d+$/.test(value) ? Number(value) : value
  return undefined
}

/** The key a chat id given by a test is stored under (see `normalizeChatId`). */
export const chatKey = (chatId: ChatId): ChatId => normalizeChatId(chatId) ?? chatId

export function requireChat(call: TelegramCall): ChatId {
  if (call.chatId === undefined) throw badRequest("chat_id is empty")
  return call.chatId
}

export function optionalInt(p: Params, key: string): number | undefined {
  const value = p[key]
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value
  return typeof n === "number" && Number.isInteger(n) ? n : undefined
}

export const nowSeconds = () => Math.floor(Date.now() / 1000)
