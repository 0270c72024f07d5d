import { Effect, Option, Schema } from "effect"

/** The subset of Telegram's Update that the bot reads (https://core.telegram.org/bots/api#update); unknown keys are ignored. */
export const TelegramUser = Schema.Struct({
  id: Schema.Int,
  is_bot: Schema.optional(Schema.Boolean),
  first_name: Schema.optional(Schema.String),
  last_name: Schema.optional(Schema.String),
  username: Schema.optional(Schema.String),
  language_code: Schema.optional(Schema.String)
})
export type TelegramUser = typeof TelegramUser.Type

export const TelegramChat = Schema.Struct({
  id: Schema.Int,
  type: Schema.Literals(["private", "group", "supergroup", "channel"]),
  title: Schema.optional(Schema.String),
  is_forum: Schema.optional(Schema.Boolean)
})
export type TelegramChat = typeof TelegramChat.Type

/** Offsets and lengths in UTF-16 code units; `user` for a text_mention. */
const MessageEntity = Schema.Struct({
  type: Schema.String,
  offset: Schema.Int,
  length: Schema.Int,
  user: Schema.optional(Schema.Struct({ id: Schema.Int }))
})
type MessageEntity = typeof MessageEntity.Type

/**
 * What a message may carry besides text, in the order it is named by: a message with none of
 * these, no text and no caption is a service message (members joined, a title changed...).
 */
export const attachmentKinds = [
  "photo",
  "video",
  "document",
  "animation",
  "audio",
  "voice",
  "video_note",
  "sticker",
  "location",
  "venue",
  "contact",
  "poll",
  "dice",
  "game",
  "story",
  "paid_media",
  "checklist"
] as const

const attachmentFields = Object.fromEntries(attachmentKinds.map((kind) => [kind, Schema.optional(Schema.Unknown)])) as {
  readonly [K in (typeof attachmentKinds)[number]]: Schema.optional<Schema.Unknown>
}

export const TelegramMessage = Schema.Struct({
  message_id: Schema.Int,
  from: Schema.optional(TelegramUser),
  chat: TelegramChat,
  date: Schema.Number,
  message_thread_id: Schema.optional(Schema.Int),
  is_topic_message: Schema.optional(Schema.Boolean),
  text: Schema.optional(Schema.String),
  entities: Schema.optional(Schema.Array(MessageEntity)),
  caption: Schema.optional(Schema.String),
  caption_entities: Schema.optional(Schema.Array(MessageEntity)),
  media_group_id: Schema.optional(Schema.String),
  /** A channel post copied into its discussion group: nobody asked the bot anything. */
  is_automatic_forward: Schema.optional(Schema.Boolean),
  reply_to_message: Schema.optional(Schema.Struct({ message_id: Schema.Int, from: Schema.optional(TelegramUser) })),
  migrate_to_chat_id: Schema.optional(Schema.Int),
  migrate_from_chat_id: Schema.optional(Schema.Int),
  ...attachmentFields
})
export type TelegramMessage = typeof TelegramMessage.Type

export const ChatMemberUpdated = Schema.Struct({
  chat: TelegramChat,
  from: TelegramUser,
  new_chat_member: Schema.Struct({ status: Schema.String })
})

export const TelegramUpdate = Schema.Struct({
  update_id: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  message: Schema.optional(TelegramMessage),
  my_chat_member: Schema.optional(ChatMemberUpdated),
  /** Bot API 10.3: the user pressed stop on a draft streamed with can_stop. */
  stopped_message_generation: Schema.optional(Schema.Struct({
    chat: TelegramChat,
    draft_id: Schema.Int,
    message_thread_id: Schema.optional(Schema.Int)
  })),
  callback_query: Schema.optional(Schema.Struct({
    id: Schema.String,
    from: TelegramUser,
    data: Schema.optional(Schema.String),
    message: Schema.optional(Schema.Struct({ message_id: Schema.Int, chat: TelegramChat }))
  }))
})
export type TelegramUpdate = typeof TelegramUpdate.Type

/** A webhook body (JSON text) -> its JSON value; fails with SchemaError when it is not JSON. */
export const decodeJson = Schema.decodeUnknownEffect(Schema.fromJsonString(Schema.Unknown))
const decodeUpdate = Schema.decodeUnknownEffect(TelegramUpdate)

/** The bot as group messages address it (getMe), the commands it has, and GROUP_REPLY_MODE. */
export interface Audience {
  readonly botId: number
  /** Without the "@". */
  readonly username: string
  /** Lowercase, without the "/": a bare `/roll` in a group is for another bot. */
  readonly commands: ReadonlyArray<string>
  readonly groupReplyMode: "mention" | "all"
}

/** The inline Stop button's callback_data under a streaming answer: "stop:<messages.id>". */
export const stopButtonData = (mailId: number) => `stop:${mailId}`

/** What the inbox does with an update: only these kinds change state; the rest are acknowledged. */
export type InboundUpdate =
  | {
    /** A user's message for the bot: text, a caption, or (text "") an attachment alone. */
    readonly _tag: "Message"
    readonly updateId: number
    readonly chat: TelegramChat
    readonly from: TelegramUser
    readonly messageId: number
    /** When the user sent it (Telegram's `date`, unix seconds). */
    readonly sentAt: number
    /** The forum topic (message_thread_id of a topic message); null in General or without topics. */
    readonly threadId: number | null
    /** The text, or the caption (the bot's own mention taken out); "" for an attachment alone. */
    readonly text: string
    /** What it carried besides text ("photo", "voice"...: attachmentKinds), or null. */
    readonly attachment: string | null
    readonly mediaGroupId: string | null
  }
  | {
    readonly _tag: "Membership"
    readonly updateId: number
    readonly chat: TelegramChat
    readonly from: TelegramUser
    readonly status: string
  }
  /** A group upgraded to a supergroup: its chat moves to the new id. */
  | { readonly _tag: "Migration"; readonly updateId: number; readonly fromChatId: number; readonly toChatId: number }
  /** Stop pressed on a streaming draft (private chats). */
  | { readonly _tag: "StopDraft"; readonly updateId: number; readonly chatId: number; readonly draftId: number }
  /** The inline Stop button pressed under a streaming answer (groups). */
  | {
    readonly _tag: "StopButton"
    readonly updateId: number
    readonly callbackQueryId: string
    readonly chatId: number
    readonly userId: number
    readonly mailId: number
  }
  /** `unexpected`: well-formed, but not as the schema expects (a new chat type, a changed field). */
  | { readonly _tag: "Ignored"; readonly updateId: number; readonly kind: string; readonly unexpected?: true }

/** Where no group message is classified, the bot's identity is not needed. */
const privateOnly: Audience = { botId: 0, username: "", commands: [], groupReplyMode: "mention" }

/** Whether a chat type (Telegram's `Chat.type`) is a group, basic or super: several people share it. */
export const isGroupType = (type: string) => type === "group" || type === "supergroup"

const isGroup = (chat: TelegramChat) => isGroupType(chat.type)

const sliceOf = (text: string, entity: MessageEntity) => text.slice(entity.offset, entity.offset + entity.length)

/** A command at the start (`/cmd` or `/cmd@name`): its name and the bot it names, lowercased. */
const commandOf = (text: string) => {
  const match = /^\/(\w+)(?:@(\w+))?/.exec(text)
  return match === null ? undefined : { name: match[1]!.toLowerCase(), target: match[2]?.toLowerCase() }
}

/**
 * Whether a group message is for the bot (PROTOCOLS.md, Where a message belongs): a command
 * it has (naming no bot), or any naming it, a mention of it (`@username` or a text_mention), or
 * a reply to one of its messages; in GROUP_REPLY_MODE=all any message but another bot's command.
 * An attachment without a caption is for the bot only as a reply to it.
 */
const addressed = (message: TelegramMessage, text: string, audience: Audience): boolean => {
  const repliesToBot = message.reply_to_message?.from?.id === audience.botId
  // A sticker or a voice note is for the bot only as a reply to it, even in "all" mode.
  if (text.length === 0) return repliesToBot
  // Every bot in a group gets every command: one naming no bot is ours only if we have it.
  const command = commandOf(text)
  if (command !== undefined) {
    return command.target !== undefined
      ? command.target === audience.username.toLowerCase()
      : audience.commands.includes(command.name)
  }
  if (audience.groupReplyMode === "all" || repliesToBot) return true
  const entities = message.entities ?? message.caption_entities ?? []
  return entities.some((entity) =>
    (entity.type === "mention" && sliceOf(text, entity).toLowerCase() === `@${audience.username.toLowerCase()}`) ||
    (entity.type === "text_mention" && entity.user?.id === audience.botId)
  )
}

/** The text without the bot's `@username` where it opens or closes it ("@bot what is X?"; "@bot" alone: ""). */
const withoutOwnMention = (text: string, username: string) => {
  const mention = new RegExp(`^@${username}\\b[\\s,:]*|\\s*@${username}$`, "gi")
  return text.replace(mention, "")
}

const messageOf = (updateId: number, message: TelegramMessage, audience: Audience): InboundUpdate => {
  const ignored: InboundUpdate = { _tag: "Ignored", updateId, kind: "message" }
  if (message.migrate_to_chat_id !== undefined) {
    return { _tag: "Migration", updateId, fromChatId: message.chat.id, toChatId: message.migrate_to_chat_id }
  }
  if (message.migrate_from_chat_id !== undefined) {
    return { _tag: "Migration", updateId, fromChatId: message.migrate_from_chat_id, toChatId: message.chat.id }
  }
  const from = message.from
  // Other bots, channels and their posts forwarded into a discussion group are not people asking.
  if (from === undefined || from.is_bot === true || message.chat.type === "channel" || message.is_automatic_forward === true) {
    return ignored
  }
  const attachment = attachmentKinds.find((kind) => message[kind] !== undefined) ?? null
  const text = message.text ?? message.caption ?? ""
  if (message.text === undefined && message.caption === undefined && attachment === null) return ignored
  if (isGroup(message.chat) && !addressed(message, text, audience)) return ignored
  return {
    _tag: "Message",
    updateId,
    chat: message.chat,
    from,
    messageId: message.message_id,
    sentAt: message.date,
    threadId: message.is_topic_message === true ? message.message_thread_id ?? null : null,
    text: isGroup(message.chat) ? withoutOwnMention(text, audience.username) : text,
    attachment,
    mediaGroupId: message.media_group_id ?? null
  }
}

/**
 * A decoded update -> what the inbox does with it: a message for the bot, a private chat's
 * membership change (blocked / unblocked), a group's move to a supergroup, a stop request, or an
 * update acknowledged and ignored (other kinds, group chatter not for the bot, service messages).
 */
export const classify = (update: TelegramUpdate, audience: Audience): InboundUpdate => {
  const updateId = update.update_id
  if (update.message !== undefined) return messageOf(updateId, update.message, audience)
  const member = update.my_chat_member
  if (member !== undefined && member.chat.type === "private") {
    return { _tag: "Membership", updateId, chat: member.chat, from: member.from, status: member.new_chat_member.status }
  }
  const stopped = update.stopped_message_generation
  if (stopped !== undefined) return { _tag: "StopDraft", updateId, chatId: stopped.chat.id, draftId: stopped.draft_id }
  const query = update.callback_query
  const mailId = /^stop:(\d+)$/.exec(query?.data ?? "")?.[1]
  if (query?.message !== undefined && mailId !== undefined) {
    return {
      _tag: "StopButton",
      updateId,
      callbackQueryId: query.id,
      chatId: query.message.chat.id,
      userId: query.from.id,
      mailId: Number(mailId)
    }
  }
  const kind = Object.keys(update).find((key) => key !== "update_id") ?? "empty"
  return { _tag: "Ignored", updateId, kind }
}

const UpdateId = Schema.Struct({ update_id: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) })
const decodeUpdateId = Schema.decodeUnknownEffect(UpdateId)

/**
 * A JSON value (a webhook body, a getUpdates entry) -> what the inbox does with it: a decoded
 * update, classified; one with an `update_id` that the schema does not expect, as an unexpected
 * kind to acknowledge (a 4xx would make Telegram redeliver it for a day and hold the chat's later
 * updates back); None when it is not an update at all.
 */
export const inboundOf = <E>(
  json: unknown,
  audience: Effect.Effect<Audience, E>
): Effect.Effect<Option.Option<InboundUpdate>, E> =>
  decodeUpdate(json).pipe(
    Effect.flatMap((update) =>
      // Only group messages need the bot's identity (getMe): private chats work without it.
      update.message !== undefined && isGroup(update.message.chat)
        ? Effect.map(audience, (known) => Option.some(classify(update, known)))
        : Effect.succeed(Option.some(classify(update, privateOnly)))
    ),
    Effect.catchTag("SchemaError", () =>
      decodeUpdateId(json).pipe(
        Effect.map(({ update_id }) => {
          const kind = Object.keys(json as object).find((key) => key !== "update_id") ?? "empty"
          return Option.some<InboundUpdate>({ _tag: "Ignored", updateId: update_id, kind, unexpected: true })
        }),
        Effect.orElseSucceed(() => Option.none<InboundUpdate>())
      ))
  )
