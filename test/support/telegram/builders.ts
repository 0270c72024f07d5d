/**
 * Builders of incoming updates, for `pushUpdate` or for posting to the bot's webhook. Their
 * shapes follow real updates (see ../shared/fixtures/telegram).
 */
import type { Chat, Message, MessageEntity, User } from "grammy/types"
import { botUser } from "./methods.ts"
import { DEFAULT_TOKEN, nowSeconds } from "./protocol.ts"
import type { NewUpdate } from "./types.ts"

/** The chat and sender of a message: a private chat unless chatType, groupTitle or isForum says otherwise. */
export interface ChatOptions {
  readonly chatId: number
  /** Defaults to chatId (a private chat). */
  readonly userId?: number
  readonly firstName?: string
  readonly messageId?: number
  readonly updateId?: number
  /** Defaults to "supergroup" with isForum, "group" with groupTitle, else "private". */
  readonly chatType?: "private" | "group" | "supergroup"
  /** The group's title; alone it makes a "group" chat (give a negative chatId and a userId). */
  readonly groupTitle?: string
  /** A supergroup with topics (`chat.is_forum: true`). */
  readonly isForum?: boolean
  /**
   * The message is in this topic: `is_topic_message: true` and `message_thread_id`. In a forum
   * supergroup it also replies to the topic's creation message, as Telegram's do (unless it
   * replies to the bot).
   */
  readonly threadId?: number
  /**
   * The message replies to the bot's message with this id (and text). In a supergroup outside
   * topics it then also has the reply thread's `message_thread_id` (the bot message's id) without
   * `is_topic_message`, as Telegram's do.
   */
  readonly replyToBot?: { readonly messageId: number; readonly text?: string }
  /** The bot's token, for the bot user (its id is the token's numeric part). Default DEFAULT_TOKEN. */
  readonly botToken?: string
}

export interface TextUpdateOptions extends ChatOptions {
  readonly text: string
  /** E.g. `{ type: "bot_command", offset: 0, length: 6 }` or a "mention" of the bot. */
  readonly entities?: ReadonlyArray<MessageEntity>
}

export type MediaKind =
  | "photo"
  | "video"
  | "document"
  | "voice"
  | "audio"
  | "sticker"
  | "video_note"
  | "animation"
  | "location"
  | "contact"
  | "poll"
  | "dice"

export interface MediaUpdateOptions extends ChatOptions {
  readonly kind: MediaKind
  /** Only for photo, video, document, voice, audio and animation. */
  readonly caption?: string
  readonly captionEntities?: ReadonlyArray<MessageEntity>
  /** An album's id; only for photo, video, document and audio. */
  readonly mediaGroupId?: string
}

export interface CallbackQueryUpdateOptions extends Omit<ChatOptions, "replyToBot" | "messageId"> {
  /** The user who pressed the button. */
  readonly userId: number
  /** The bot's message carrying the button. */
  readonly messageId: number
  readonly data: string
  /** The query id to answer with answerCallbackQuery; derived from userId and messageId when omitted. */
  readonly id?: string
  /** The text of the bot's message. */
  readonly messageText?: string
}

const CAPTIONED: ReadonlySet<MediaKind> = new Set<MediaKind>(["photo", "video", "document", "voice", "audio", "animation"])
const IN_ALBUMS: ReadonlySet<MediaKind> = new Set<MediaKind>(["photo", "video", "document", "audio"])

const updateId = (id: number | undefined) => (id === undefined ? {} : { update_id: id })

function chatOf(opts: ChatOptions): Exclude<Chat, Chat.ChannelChat> {
  const type = opts.chatType ?? (opts.isForum === true ? "supergroup" : opts.groupTitle !== undefined ? "group" : "private")
  if (opts.isForum === true && type !== "supergroup") throw new Error("FakeTelegram builders: only a supergroup can be a forum")
  switch (type) {
    case "private":
      return { id: opts.chatId, type, first_name: opts.firstName ?? "Tester" }
    case "group":
      return { id: opts.chatId, type, title: opts.groupTitle ?? "Test group" }
    case "supergroup":
      return {
        id: opts.chatId,
        type,
        title: opts.groupTitle ?? "Test supergroup",
        ...(opts.isForum === true ? { is_forum: true } : {})
      }
  }
}

const topicOf = (threadId: number | undefined) =>
  threadId === undefined ? {} : { message_thread_id: threadId, is_topic_message: true }

/** The fields every message built here shares: id, topic, date, chat, sender and what it replies to. */
function messageBase(opts: ChatOptions) {
  const chat = chatOf(opts)
  const from: User = { id: opts.userId ?? opts.chatId, is_bot: false, first_name: opts.firstName ?? "Tester" }
  const date = nowSeconds()
  const topic = topicOf(opts.threadId)
  const repliedTo: Message | undefined =
    opts.replyToBot !== undefined
      ? {
          message_id: opts.replyToBot.messageId,
          ...topic,
          from: botUser(opts.botToken ?? DEFAULT_TOKEN),
          chat,
          date,
          text: opts.replyToBot.text ?? "An earlier answer"
        }
      : opts.threadId !== undefined && chat.type === "supergroup" && chat.is_forum === true
        ? {
            message_id: opts.threadId,
            ...topic,
            from,
            chat,
            date,
            forum_topic_created: { name: "Test topic", icon_color: 0x6fb9f0 }
          }
        : undefined
  const replyThread =
    opts.threadId === undefined && opts.replyToBot !== undefined && chat.type === "supergroup"
      ? { message_thread_id: opts.replyToBot.messageId }
      : topic
  return {
    message_id: opts.messageId ?? 1,
    ...replyThread,
    date,
    chat,
    from,
    // grammY's type of a replied-to message can't be built under exactOptionalPropertyTypes.
    ...(repliedTo === undefined ? {} : { reply_to_message: repliedTo as NonNullable<Message["reply_to_message"]> })
  }
}

/** A text message update (private chat unless the chat options say otherwise). */
export function textMessageUpdate(opts: TextUpdateOptions): NewUpdate {
  return {
    ...updateId(opts.updateId),
    message: {
      ...messageBase(opts),
      text: opts.text,
      ...(opts.entities === undefined ? {} : { entities: [...opts.entities] })
    }
  }
}

/**
 * A text that mentions the bot ("@fake_test_bot <text>") with its mention entity, as a group
 * message addressed to the bot carries it: spread into textMessageUpdate's options.
 */
export function mentioningBot(text: string, token = DEFAULT_TOKEN): Pick<TextUpdateOptions, "text" | "entities"> {
  const mention = `@${botUser(token).username}`
  return { text: `${mention} ${text}`, entities: [{ type: "mention", offset: 0, length: mention.length }] }
}

/** A message of the given kind, shaped like Telegram's (file ids are fake, sizes plausible). */
export function mediaMessageUpdate(opts: MediaUpdateOptions): NewUpdate {
  if ((opts.caption !== undefined || opts.captionEntities !== undefined) && !CAPTIONED.has(opts.kind)) {
    throw new Error(`mediaMessageUpdate: a ${opts.kind} has no caption`)
  }
  if (opts.mediaGroupId !== undefined && !IN_ALBUMS.has(opts.kind)) {
    throw new Error(`mediaMessageUpdate: a ${opts.kind} can't be in an album`)
  }
  const base = messageBase(opts)
  return {
    ...updateId(opts.updateId),
    message: {
      ...base,
      ...(opts.mediaGroupId === undefined ? {} : { media_group_id: opts.mediaGroupId }),
      ...mediaContent(opts.kind, `${opts.chatId}_${base.message_id}`),
      ...(opts.caption === undefined ? {} : { caption: opts.caption }),
      ...(opts.captionEntities === undefined ? {} : { caption_entities: [...opts.captionEntities] })
    }
  }
}

/** A file's ids; `key` makes them unique per chat and message. */
const fileIds = (kind: string, key: string) => ({ file_id: `fake-${kind}-${key}`, file_unique_id: `uniq-${kind}-${key}` })

function thumbnail(key: string, width: number, height: number) {
  return { ...fileIds("thumb", key), file_size: 3_000, width, height }
}

function mediaContent(kind: MediaKind, key: string) {
  switch (kind) {
    case "photo":
      // Every size Telegram made, smallest first.
      return {
        photo: [
          { ...fileIds("photo-s", key), file_size: 1_392, width: 51, height: 90 },
          { ...fileIds("photo-m", key), file_size: 17_391, width: 180, height: 320 },
          { ...fileIds("photo-x", key), file_size: 72_753, width: 451, height: 800 },
          { ...fileIds("photo-y", key), file_size: 132_533, width: 721, height: 1280 }
        ]
      }
    case "video":
      return {
        video: {
          duration: 29,
          width: 720,
          height: 1280,
          mime_type: "video/mp4",
          thumbnail: thumbnail(key, 180, 320),
          ...fileIds("video", key),
          file_size: 18_081_996
        }
      }
    case "document":
      return {
        document: { file_name: "report.pdf", mime_type: "application/pdf", ...fileIds("document", key), file_size: 48_213 }
      }
    case "voice":
      return { voice: { duration: 5, mime_type: "audio/ogg", ...fileIds("voice", key), file_size: 23_000 } }
    case "audio":
      return {
        audio: {
          duration: 184,
          performer: "Test Artist",
          title: "Test Song",
          file_name: "song.mp3",
          mime_type: "audio/mpeg",
          ...fileIds("audio", key),
          file_size: 4_412_160
        }
      }
    case "sticker":
      return {
        sticker: {
          width: 512,
          height: 512,
          emoji: "😀",
          set_name: "TestStickers",
          is_animated: false,
          is_video: false,
          type: "regular" as const,
          thumbnail: thumbnail(key, 128, 128),
          ...fileIds("sticker", key),
          file_size: 21_430
        }
      }
    case "video_note":
      return {
        video_note: {
          duration: 8,
          length: 384,
          thumbnail: thumbnail(key, 240, 240),
          ...fileIds("video_note", key),
          file_size: 912_344
        }
      }
    case "animation": {
      // Telegram sends a GIF both as `animation` and as `document`.
      const file = {
        file_name: "funny.gif.mp4",
        mime_type: "video/mp4",
        thumbnail: thumbnail(key, 320, 180),
        ...fileIds("animation", key),
        file_size: 210_582
      }
      return { animation: { ...file, duration: 3, width: 480, height: 270 }, document: file }
    }
    case "location":
      return { location: { latitude: 52.520008, longitude: 13.404954 } }
    case "contact":
      return { contact: { phone_number: "+15555550123", first_name: "Alice", last_name: "Example" } }
    case "poll":
      return {
        poll: {
          id: `5368${key.replace(/\D/g, "")}`,
          question: "Where do we meet?",
          options: [
            { persistent_id: "0", text: "Office", voter_count: 0 },
            { persistent_id: "1", text: "Online", voter_count: 0 }
          ],
          total_voter_count: 0,
          is_closed: false,
          is_anonymous: true,
          type: "regular" as const,
          allows_multiple_answers: false,
          allows_revoting: true,
          members_only: false
        }
      }
    case "dice":
      return { dice: { emoji: "🎲", value: 4 } }
  }
}

/** The user pressed the stop button of a draft sent with `can_stop` (private chats). */
export function stoppedGenerationUpdate(opts: {
  readonly chatId: number
  readonly draftId: number
  readonly threadId?: number
  readonly updateId?: number
  readonly firstName?: string
}): NewUpdate {
  return {
    ...updateId(opts.updateId),
    stopped_message_generation: {
      chat: { id: opts.chatId, type: "private", first_name: opts.firstName ?? "Tester" },
      ...(opts.threadId === undefined ? {} : { message_thread_id: opts.threadId }),
      draft_id: opts.draftId
    }
  }
}

/** The user pressed an inline button carrying `data` under the bot's message `messageId`. */
export function callbackQueryUpdate(opts: CallbackQueryUpdateOptions): NewUpdate {
  const chat = chatOf(opts)
  return {
    ...updateId(opts.updateId),
    callback_query: {
      id: opts.id ?? `${opts.userId}${opts.messageId}`,
      from: { id: opts.userId, is_bot: false, first_name: opts.firstName ?? "Tester" },
      message: {
        message_id: opts.messageId,
        ...topicOf(opts.threadId),
        date: nowSeconds(),
        chat,
        from: botUser(opts.botToken ?? DEFAULT_TOKEN),
        text: opts.messageText ?? "Choose an option",
        reply_markup: { inline_keyboard: [[{ text: "Choose", callback_data: opts.data }]] }
      },
      // Telegram's is an opaque number per chat; any stable string does.
      chat_instance: String(-(Math.abs(opts.chatId) * 1_000 + 837)),
      data: opts.data
    }
  }
}

/** The service message in the old group when it was upgraded to the supergroup `toChatId`. */
export function migrationUpdate(opts: {
  readonly fromChatId: number
  readonly toChatId: number
  readonly updateId?: number
  /** Who upgraded the group (default 1). */
  readonly userId?: number
  readonly groupTitle?: string
  readonly messageId?: number
}): NewUpdate {
  return {
    ...updateId(opts.updateId),
    message: {
      message_id: opts.messageId ?? 1,
      date: nowSeconds(),
      chat: { id: opts.fromChatId, type: "group", title: opts.groupTitle ?? "Test group" },
      from: { id: opts.userId ?? 1, is_bot: false, first_name: "Tester" },
      migrate_to_chat_id: opts.toChatId
    }
  }
}
