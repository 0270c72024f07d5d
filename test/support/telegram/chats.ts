/**
 * Per-chat state: messages (with edits and deletions), drafts and forum topics, and the Bot API
 * methods that change them. Chat ids are already normalised (see `chatKey`).
 */
import { badRequest, nowSeconds, optionalInt, type Params } from "./protocol.ts"
import { formatContent } from "./text.ts"
import type { ChatId, FakeDraft, FakeMessage } from "./types.ts"

type MutableMessage = { -readonly [K in keyof FakeMessage]: FakeMessage[K] } & { deleted: boolean }

interface ChatState {
  nextMessageId: number
  readonly messages: Array<MutableMessage>
  readonly drafts: Map<number, FakeDraft>
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null)

function snapshot(m: MutableMessage): FakeMessage {
  const { deleted: _deleted, ...message } = m
  return { ...message, entities: [...m.entities] }
}

/** `reply_parameters.message_id`, or the legacy `reply_to_message_id`. */
function replyToMessageId(p: Params): number | undefined {
  const replyParameters = p["reply_parameters"]
  const fromParameters =
    typeof replyParameters === "object" && replyParameters !== null
      ? optionalInt(replyParameters as Params, "message_id")
      : undefined
  return fromParameters ?? optionalInt(p, "reply_to_message_id")
}

/** Inline keyboard buttons' callback_data must be 1-64 bytes of UTF-8. */
function checkReplyMarkup(replyMarkup: unknown): void {
  if (typeof replyMarkup !== "object" || replyMarkup === null || !("inline_keyboard" in replyMarkup)) return
  const rows = replyMarkup.inline_keyboard
  if (!Array.isArray(rows)) return
  for (const button of rows.flat() as Array<unknown>) {
    if (typeof button !== "object" || button === null || !("callback_data" in button)) continue
    const data = button.callback_data
    const bytes = typeof data === "string" ? Buffer.byteLength(data, "utf8") : 0
    if (bytes < 1 || bytes > 64) throw badRequest("BUTTON_DATA_INVALID")
  }
}

export class ChatStore {
  readonly #chats = new Map<ChatId, ChatState>()
  /** Forum chats (see `makeForum`) and their topic ids. */
  readonly #forums = new Map<ChatId, ReadonlySet<number>>()
  /** Each group's administrators (see `makeAdmin`); everyone else is a plain member. */
  readonly #admins = new Map<ChatId, Set<number>>()

  clear(): void {
    this.#chats.clear()
    this.#forums.clear()
    this.#admins.clear()
  }

  makeAdmin(chatId: ChatId, userId: number): void {
    this.#admins.set(chatId, (this.#admins.get(chatId) ?? new Set()).add(userId))
  }

  /** getChatMember's status: "administrator" for those made admins, else "member". */
  memberStatus(chatId: ChatId, userId: number): "administrator" | "member" {
    return this.#admins.get(chatId)?.has(userId) === true ? "administrator" : "member"
  }

  makeForum(chatId: ChatId, topicIds: ReadonlyArray<number>): void {
    this.#forums.set(chatId, new Set(topicIds))
  }

  isForum(chatId: ChatId): boolean {
    return this.#forums.has(chatId)
  }

  /** The call's `message_thread_id`; in a forum it must be one of its topics. */
  threadId(chatId: ChatId, p: Params): number | undefined {
    const threadId = optionalInt(p, "message_thread_id")
    const topics = this.#forums.get(chatId)
    if (threadId !== undefined && topics !== undefined && !topics.has(threadId)) {
      throw badRequest("message thread not found")
    }
    return threadId
  }

  /** The chat's visible (not deleted) messages in send order; snapshots, not live objects. */
  messages(chatId: ChatId): Array<FakeMessage> {
    return (this.#chats.get(chatId)?.messages ?? []).filter((m) => !m.deleted).map(snapshot)
  }

  drafts(chatId: ChatId): Array<FakeDraft> {
    return [...(this.#chats.get(chatId)?.drafts.values() ?? [])]
  }

  /** The new message; sending clears the chat's drafts. */
  sendMessage(chatId: ChatId, p: Params): FakeMessage {
    const threadId = this.threadId(chatId, p)
    const content = formatContent(p, { allowEmpty: false })
    checkReplyMarkup(p["reply_markup"])
    const chat = this.#chat(chatId)
    const message: MutableMessage = {
      chat_id: chatId,
      message_id: chat.nextMessageId++,
      ...content,
      reply_markup: p["reply_markup"],
      message_thread_id: threadId,
      reply_to_message_id: replyToMessageId(p),
      date: nowSeconds(),
      edit_date: undefined,
      edit_count: 0,
      deleted: false
    }
    chat.messages.push(message)
    chat.drafts.clear()
    return message
  }

  editMessageText(chatId: ChatId, p: Params): FakeMessage {
    const messageId = optionalInt(p, "message_id")
    if (messageId === undefined) throw badRequest("message identifier is not specified")
    const content = formatContent(p, { allowEmpty: false })
    const replyMarkup = p["reply_markup"]
    checkReplyMarkup(replyMarkup)
    const message = this.#visibleMessage(chatId, messageId)
    if (message === undefined) throw badRequest("message to edit not found")
    if (
      message.text === content.text &&
      sameJson(message.entities, content.entities) &&
      sameJson(message.reply_markup, replyMarkup)
    ) {
      throw badRequest(
        "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
      )
    }
    Object.assign(message, content, {
      reply_markup: replyMarkup,
      edit_date: nowSeconds(),
      edit_count: message.edit_count + 1
    })
    return message
  }

  sendMessageDraft(chatId: ChatId, p: Params): true {
    const draftId = optionalInt(p, "draft_id")
    if (draftId === undefined || draftId === 0) throw badRequest("draft_id must be non-zero")
    const threadId = this.threadId(chatId, p)
    const content = formatContent(p, { allowEmpty: true })
    this.#chat(chatId).drafts.set(draftId, {
      chat_id: chatId,
      draft_id: draftId,
      message_thread_id: threadId,
      text: content.text,
      raw: content.raw,
      parse_mode: content.parse_mode,
      entities: content.entities,
      can_stop: p["can_stop"] === true,
      keep_on_stop: p["keep_on_stop"] === true
    })
    return true
  }

  deleteMessage(chatId: ChatId, p: Params): true {
    const message = this.#visibleMessage(chatId, optionalInt(p, "message_id"))
    if (message === undefined) throw badRequest("message to delete not found")
    message.deleted = true
    return true
  }

  #visibleMessage(chatId: ChatId, messageId: number | undefined): MutableMessage | undefined {
    return this.#chats.get(chatId)?.messages.find((m) => m.message_id === messageId && !m.deleted)
  }

  #chat(chatId: ChatId): ChatState {
    let chat = this.#chats.get(chatId)
    if (chat === undefined) {
      chat = { nextMessageId: 1, messages: [], drafts: new Map() }
      this.#chats.set(chatId, chat)
    }
    return chat
  }
}
