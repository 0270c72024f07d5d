import { Context, Duration, Effect, Layer, Redacted } from "effect"
import {
  type BotCommand,
  type Button,
  MessageGone,
  type SendOptions,
  Telegram,
  TelegramApiError,
  type TelegramError
} from "../../services/telegram/Telegram.ts"
import { maxMessageLength } from "../../services/telegram/TelegramMarkdown.ts"

export type TelegramMethod =
  | "sendMessage"
  | "editMessageText"
  | "deleteMessage"
  | "sendMessageDraft"
  | "sendChatAction"
  | "setWebhook"
  | "deleteWebhook"
  | "getUpdates"
  | "getMe"
  | "getChatMember"
  | "answerCallbackQuery"
  | "setMyCommands"

/** One call as the bot made it, in order; `failed` names the error it got, if any. */
export interface RecordedCall {
  readonly method: TelegramMethod
  readonly chatId?: number
  readonly messageId?: number
  readonly text?: string
  readonly html?: boolean
  readonly preview?: boolean
  readonly buttons?: ReadonlyArray<Button>
  /** message_thread_id, reply_parameters.message_id and can_stop, as sent. */
  readonly threadId?: number
  readonly replyTo?: number
  readonly canStop?: boolean
  readonly failed?: string
}

/** A message as the chat shows it now. */
export interface ShownMessage {
  readonly messageId: number
  readonly text: string
  readonly html: boolean
  readonly buttons: ReadonlyArray<Button>
  readonly threadId?: number
  readonly replyTo?: number
}

/** Inspects and scripts the in-memory Telegram of `layer`. */
export class TelegramScript extends Context.Service<TelegramScript, {
  /** Every call so far, in order (failed ones included). */
  readonly calls: Effect.Effect<ReadonlyArray<RecordedCall>>
  /** The chat's messages that exist now, oldest first. */
  readonly messages: (chatId: number) => Effect.Effect<ReadonlyArray<ShownMessage>>
  /** The next `times` calls of `method` fail with `error` instead of doing anything. */
  readonly failNext: (method: TelegramMethod, error: TelegramError, times?: number) => Effect.Effect<void>
  /** Forgets calls, messages and scripted failures. */
  readonly reset: Effect.Effect<void>
  /** Makes the user an administrator of the group: getChatMember says "administrator" (others: "member"). */
  readonly makeAdmin: (chatId: number, userId: number) => Effect.Effect<void>
}>()("test/TelegramScript") {}

const badRequest = (method: string, description: string) =>
  new TelegramApiError({ method, code: 400, message: `Bad Request: ${description}` })

/**
 * Telegram in memory, for service tests: chats hold messages, edits and deletes apply to them,
 * texts are checked against Telegram's limits (empty, over 4096 UTF-16 units, unknown message),
 * and a test can make the next calls fail with any error. No pacing, no retries: an error the
 * script sets is what the caller gets, as from the live layer once its retries gave up.
 */
export const layer: Layer.Layer<Telegram | TelegramScript> = Layer.effectContext(Effect.sync(() => {
  let calls: Array<RecordedCall> = []
  let chats = new Map<number, Array<ShownMessage>>()
  let failures: Array<{ readonly method: TelegramMethod; readonly error: TelegramError }> = []
  /** "chatId:userId" of the groups' administrators (TelegramScript.makeAdmin). */
  const admins = new Set<string>()
  let nextMessageId = 1

  /** Records the call and fails it when the script says so. */
  const call = (recorded: RecordedCall) =>
    Effect.suspend(() => {
      const index = failures.findIndex((f) => f.method === recorded.method)
      const failure = index >= 0 ? failures.splice(index, 1)[0]!.error : undefined
      calls.push(failure ? { ...recorded, failed: failure.message } : recorded)
      return failure ? Effect.fail(failure) : Effect.void
    })

  const checkText = (method: string, text: string) =>
    text.trim().length === 0
      ? Effect.fail(badRequest(method, "message text is empty"))
      : text.length > maxMessageLength
      ? Effect.fail(badRequest(method, "message is too long"))
      : Effect.void

  const chat = (chatId: number) => {
    const messages = chats.get(chatId) ?? []
    chats.set(chatId, messages)
    return messages
  }

  const flags = (options?: SendOptions) => ({
    html: options?.html === true,
    preview: options?.preview === true,
    buttons: options?.buttons ?? [],
    ...(options?.threadId !== undefined ? { threadId: options.threadId } : {}),
    ...(options?.replyTo !== undefined ? { replyTo: options.replyTo } : {})
  })

  const telegram = Telegram.of({
    sendMessage: Effect.fn("Telegram.sendMessage")(function*(chatId: number, text: string, options?: SendOptions) {
      yield* call({ method: "sendMessage", chatId, text, ...flags(options) })
      yield* checkText("sendMessage", text)
      const messageId = nextMessageId++
      const { preview: _preview, ...shown } = flags(options)
      chat(chatId).push({ messageId, text, ...shown })
      return messageId
    }),
    editMessageText: Effect.fn("Telegram.editMessageText")(
      function*(chatId: number, messageId: number, text: string, options?: SendOptions) {
        yield* call({ method: "editMessageText", chatId, messageId, text, ...flags(options) })
        yield* checkText("editMessageText", text)
        const messages = chat(chatId)
        const index = messages.findIndex((m) => m.messageId === messageId)
        if (index < 0) return yield* new MessageGone({ messageId, message: "Bad Request: message to edit not found" })
        messages[index] = { ...messages[index]!, text, html: options?.html === true, buttons: options?.buttons ?? [] }
      }
    ),
    deleteMessage: Effect.fn("Telegram.deleteMessage")(function*(chatId: number, messageId: number) {
      yield* call({ method: "deleteMessage", chatId, messageId })
      const messages = chat(chatId)
      const index = messages.findIndex((m) => m.messageId === messageId)
      if (index < 0) return yield* new MessageGone({ messageId, message: "Bad Request: message to delete not found" })
      messages.splice(index, 1)
    }),
    sendDraft: Effect.fn("Telegram.sendDraft")(
      function*(chatId: number, _draftId: number, text: string, options?: { threadId?: number; canStop?: boolean }) {
        yield* call({
          method: "sendMessageDraft",
          chatId,
          text,
          ...(options?.threadId !== undefined ? { threadId: options.threadId } : {}),
          canStop: options?.canStop === true
        })
        yield* checkText("sendMessageDraft", text)
      }
    ),
    sendTyping: Effect.fn("Telegram.sendTyping")(function*(chatId: number, threadId?: number) {
      yield* call({ method: "sendChatAction", chatId, ...(threadId !== undefined ? { threadId } : {}) })
    }),
    answerCallbackQuery: Effect.fn("Telegram.answerCallbackQuery")(function*(_id: string, text: string) {
      yield* call({ method: "answerCallbackQuery", text })
    }),
    setMyCommands: Effect.fn("Telegram.setMyCommands")(function*(commands: ReadonlyArray<BotCommand>) {
      yield* call({ method: "setMyCommands", text: commands.map((c) => c.command).join(" ") })
    }),
    setWebhook: Effect.fn("Telegram.setWebhook")(function*(url: string, secret: Redacted.Redacted) {
      yield* call({ method: "setWebhook", text: url })
      if (Redacted.value(secret).length === 0) return yield* badRequest("setWebhook", "secret token is empty")
    }),
    deleteWebhook: call({ method: "deleteWebhook" }).pipe(Effect.withSpan("Telegram.deleteWebhook")),
    getChatMember: Effect.fn("Telegram.getChatMember")(function*(chatId: number, userId: number) {
      yield* call({ method: "getChatMember" })
      return admins.has(`${chatId}:${userId}`) ? "administrator" as const : "member" as const
    }),
    getMe: call({ method: "getMe" }).pipe(Effect.as({ id: 1, username: "memory_bot" }), Effect.withSpan("Telegram.getMe")),
    getUpdates: Effect.fn("Telegram.getUpdates")(function*(_offset: number, timeoutSeconds: number) {
      yield* call({ method: "getUpdates" })
      // No user writes to a chat in memory: each long poll runs out empty, as Telegram's would.
      yield* Effect.sleep(Duration.seconds(timeoutSeconds))
      return []
    })
  })

  const script = TelegramScript.of({
    calls: Effect.sync(() => [...calls]),
    messages: (chatId) => Effect.sync(() => [...chat(chatId)]),
    failNext: (method, error, times = 1) =>
      Effect.sync(() => {
        for (let i = 0; i < times; i++) failures.push({ method, error })
      }),
    makeAdmin: (chatId, userId) => Effect.sync(() => void admins.add(`${chatId}:${userId}`)),
    reset: Effect.sync(() => {
      admins.clear()
      calls = []
      chats = new Map()
      failures = []
    })
  })

  return Context.make(Telegram, telegram).pipe(Context.add(TelegramScript, script))
}))
