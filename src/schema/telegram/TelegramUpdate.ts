import { Effect, Option, Schema } from "effect"

/** The subset of Telegram's Update that the bot reads; unknown keys are ignored by Struct. */
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
  title: Schema.optional(Schema.String)
})
export type TelegramChat = typeof TelegramChat.Type

export const TelegramMessage = Schema.Struct({
  message_id: Schema.Int,
  from: Schema.optional(TelegramUser),
  chat: TelegramChat,
  date: Schema.Number,
  text: Schema.optional(Schema.String)
})

export const ChatMemberUpdated = Schema.Struct({
  chat: TelegramChat,
  from: TelegramUser,
  new_chat_member: Schema.Struct({ status: Schema.String })
})

export const TelegramUpdate = Schema.Struct({
  update_id: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  message: Schema.optional(TelegramMessage),
  my_chat_member: Schema.optional(ChatMemberUpdated)
})
export type TelegramUpdate = typeof TelegramUpdate.Type

/** A webhook body (JSON text) -> its JSON value; fails with SchemaError when it is not JSON. */
export const decodeJson = Schema.decodeUnknownEffect(Schema.fromJsonString(Schema.Unknown))
const decodeUpdate = Schema.decodeUnknownEffect(TelegramUpdate)

/** What the inbox does with an update: only these kinds change state; the rest are acknowledged. */
export type InboundUpdate =
  | {
    readonly _tag: "Text"
    readonly updateId: number
    readonly chat: TelegramChat
    readonly from: TelegramUser
    readonly messageId: number
    readonly text: string
  }
  | {
    readonly _tag: "Membership"
    readonly updateId: number
    readonly chat: TelegramChat
    readonly from: TelegramUser
    readonly status: string
  }
  /** `unexpected`: well-formed, but not as the schema expects (a new chat type, a changed field). */
  | { readonly _tag: "Ignored"; readonly updateId: number; readonly kind: string; readonly unexpected?: true }

/**
 * Text from a user, a private chat's membership change (blocked / unblocked), or an update the
 * bot acknowledges and ignores (other kinds, empty text, group membership).
 */
export const classify = (update: TelegramUpdate): InboundUpdate => {
  const message = update.message
  if (message?.text !== undefined && message.from !== undefined && message.text.trim().length > 0) {
    return {
      _tag: "Text",
      updateId: update.update_id,
      chat: message.chat,
      from: message.from,
      messageId: message.message_id,
      text: message.text
    }
  }
  const member = update.my_chat_member
  if (member !== undefined && member.chat.type === "private") {
    return {
      _tag: "Membership",
      updateId: update.update_id,
      chat: member.chat,
      from: member.from,
      status: member.new_chat_member.status
    }
  }
  const kind = message !== undefined ? "message" : member !== undefined ? "my_chat_member" : "other"
  return { _tag: "Ignored", updateId: update.update_id, kind }
}

const UpdateId = Schema.Struct({ update_id: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) })
const decodeUpdateId = Schema.decodeUnknownEffect(UpdateId)

/**
 * A JSON value (a webhook body, a getUpdates entry) -> what the inbox does with it: a decoded
 * update, classified; one with an `update_id` that the schema does not expect, as an unexpected
 * kind to acknowledge (a 4xx would make Telegram redeliver it for a day and hold the chat's later
 * updates back); None when it is not an update at all.
 */
export const inboundOf = (json: unknown): Effect.Effect<Option.Option<InboundUpdate>> =>
  decodeUpdate(json).pipe(
    Effect.map((update) => Option.some(classify(update))),
    Effect.catchTag("SchemaError", () =>
      decodeUpdateId(json).pipe(
        Effect.map(({ update_id }) => {
          const kind = Object.keys(json as object).find((key) => key !== "update_id") ?? "empty"
          return Option.some<InboundUpdate>({ _tag: "Ignored", updateId: update_id, kind, unexpected: true })
        }),
        Effect.orElseSucceed(() => Option.none<InboundUpdate>())
      ))
  )
