/**
 * Per-chat state: messages (with edits and deletions) and drafts, and the Bot API methods that
 * change them. Chat ids are already normalised (see `chatKey`).
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

export class ChatStore {
  readonly #chats = new Map<ChatId, ChatState>()

  clear(): void {
    this.#chats.clear()
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
    const content = formatContent(p, { allowEmpty: false })
    const chat = this.#chat(chatId)
    const message: MutableMessage = {
      chat_id: chatId,
      message_id: chat.nextMessageId++,
      ...content,
      reply_markup: p["reply_markup"],
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
    const message = this.#visibleMessage(chatId, messageId)
    if (message === undefined) throw badRequest("message to edit not found")
    const replyMarkup = p["reply_markup"]
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
    const content = formatContent(p, { allowEmpty: true })
    this.#chat(chatId).drafts.set(draftId, {
      chat_id: chatId,
      draft_id: draftId,
      text: content.text,
      raw: content.raw,
      parse_mode: content.parse_mode,
      entities: content.entities
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
