/**
 * The Bot API methods the fake implements, and the Telegram objects (bot user, message, chat)
 * it answers with.
 */
import type { ChatStore } from "./chats.ts"
import type { CommandMenus } from "./commands.ts"
import { badRequest, type Method, type Params, requireChat } from "./protocol.ts"
import type { ChatId, FakeMessage, TelegramCall } from "./types.ts"
import type { UpdateQueue } from "./updates.ts"

const CHAT_ACTIONS = new Set([
  "typing",
  "upload_photo",
  "record_video",
  "upload_video",
  "record_voice",
  "upload_voice",
  "upload_document",
  "choose_sticker",
  "find_location",
  "record_video_note",
  "upload_video_note"
])

/** The bot as it appears in messages (`from`); its id is the token's numeric part. */
export function botUser(token: string) {
  const id = Number.parseInt(token.split(":")[0] ?? "", 10)
  return { id: Number.isFinite(id) ? id : 123456, is_bot: true as const, first_name: "Fake Bot", username: "fake_test_bot" }
}

export class BotApi {
  readonly #token: string
  readonly #chats: ChatStore
  readonly #updates: UpdateQueue
  readonly #commands: CommandMenus

  constructor(token: string, chats: ChatStore, updates: UpdateQueue, commands: CommandMenus) {
    this.#token = token
    this.#chats = chats
    this.#updates = updates
    this.#commands = commands
  }

  /** The method's result; failures are thrown as TelegramError (async, so they reject). */
  async call(method: Method, call: TelegramCall, p: Params, signal: AbortSignal): Promise<unknown> {
    switch (method) {
      case "getMe":
        return {
          ...botUser(this.#token),
          can_join_groups: true,
          can_read_all_group_messages: false,
          supports_inline_queries: false,
          can_connect_to_business: false,
          has_main_web_app: false
        }
      case "setWebhook":
        return this.#updates.setWebhook(p)
      case "deleteWebhook":
        return this.#updates.deleteWebhook(p)
      case "getWebhookInfo":
        return this.#updates.getWebhookInfo()
      case "getUpdates":
        return this.#updates.getUpdates(p, signal)
      case "sendMessage":
        return this.#toTelegramMessage(this.#chats.sendMessage(requireChat(call), p))
      case "editMessageText":
        if (p["inline_message_id"] !== undefined) {
          throw badRequest("inline messages are not supported by the fake")
        }
        return this.#toTelegramMessage(this.#chats.editMessageText(requireChat(call), p))
      case "sendChatAction": {
        const chatId = requireChat(call)
        if (typeof p["action"] !== "string" || !CHAT_ACTIONS.has(p["action"])) {
          throw badRequest("wrong parameter action in request")
        }
        this.#chats.threadId(chatId, p)
        return true
      }
      case "sendMessageDraft":
        return this.#chats.sendMessageDraft(requireChat(call), p)
      case "deleteMessage":
        return this.#chats.deleteMessage(requireChat(call), p)
      case "setMyCommands":
        return this.#commands.setMyCommands(p)
      case "getMyCommands":
        return this.#commands.getMyCommands(p)
      case "getChatMember": {
        const chatId = requireChat(call)
        const userId = p["user_id"]
        if (typeof userId !== "number" || !Number.isInteger(userId)) throw badRequest("wrong user_id specified")
        const status = this.#chats.memberStatus(chatId, userId)
        const user = { id: userId, is_bot: false, first_name: "Member" }
        return status === "administrator"
          ? { status, user, can_be_edited: false, is_anonymous: false, can_manage_chat: true, can_delete_messages: true }
          : { status, user }
      }
      case "answerCallbackQuery": {
        // Any non-empty id is accepted: tests check the answer through `calls`.
        const id = p["callback_query_id"]
        if (typeof id !== "number" && (typeof id !== "string" || id === "")) {
          throw badRequest("query is too old and response timeout expired or query ID is invalid")
        }
        return true
      }
    }
  }

  #toTelegramMessage(m: FakeMessage) {
    const isForum = this.#chats.isForum(m.chat_id)
    return {
      message_id: m.message_id,
      ...(m.message_thread_id === undefined ? {} : { message_thread_id: m.message_thread_id }),
      ...(isForum && m.message_thread_id !== undefined ? { is_topic_message: true } : {}),
      date: m.date,
      ...(m.edit_date === undefined ? {} : { edit_date: m.edit_date }),
      chat: chatObject(m.chat_id, isForum),
      from: botUser(this.#token),
      text: m.text,
      ...(m.entities.length === 0 ? {} : { entities: m.entities }),
      ...(m.reply_markup === undefined ? {} : { reply_markup: m.reply_markup })
    }
  }
}

/** Groups marked with `makeForum` get `is_forum` (private chats with topics have no such field). */
function chatObject(chatId: ChatId, isForum: boolean) {
  if (typeof chatId === "string") {
    // "@channel": Telegram would answer with the channel's numeric id; derive a stable fake one.
    let hash = 0
    for (const ch of chatId) hash = (hash * 31 + ch.charCodeAt(0)) % 1_000_000_000
    return { id: -1_000_000_000_000 - hash, type: "channel", title: chatId, username: chatId.replace(/^@/, "") }
  }
  if (chatId > 0) return { id: chatId, type: "private", first_name: "Tester" }
  const forum = isForum ? { is_forum: true } : {}
  if (chatId <= -1_000_000_000_000) return { id: chatId, type: "supergroup", title: "Test supergroup", ...forum }
  return { id: chatId, type: "group", title: "Test group", ...forum }
}
