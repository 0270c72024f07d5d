/**
 * A fake Telegram Bot API server for integration tests and the benchmark.
 *
 * It speaks real HTTP on 127.0.0.1 (ephemeral port), so the bot talks to it through grammY's
 * real `Api` client: `new Api(token, { apiRoot: fake.url })`. It keeps per-chat state (messages,
 * drafts, forum topics), the bot's command menus, a log of every call, validates text the way
 * Telegram does (empty / too long / broken HTML / "message is not modified", callback_data
 * size), and can inject faults (429 with retry_after, 5xx, 400/403, blocked chats, groups
 * migrated to supergroups). After a 429 it also checks that the client honoured retry_after:
 * every call that arrives too early is recorded in `violations`.
 *
 * Not covered: file uploads (multipart), inline messages, the MarkdownV2 parse mode (answered
 * like any unsupported one), legacy `Markdown` parse mode (text is kept verbatim), delivery of
 * updates to a webhook (tests post updates to the bot themselves), `reply_to_message` in the
 * answers (the replied-to id is kept in `FakeMessage.reply_to_message_id`), checking that a
 * replied-to message or an answered callback query exists.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { BotCommand, BotCommandScope, Update } from "grammy/types"
import { ChangeNotifier, closeServer, delay, listenOnLoopback, waitForCondition } from "../LoopbackServer.ts"
import { ChatStore } from "./chats.ts"
import { CommandMenus } from "./commands.ts"
import { DroppedConnection, FaultInjector } from "./faults.ts"
import { failure, readParams, send } from "./http.ts"
import { BotApi } from "./methods.ts"
import {
  chatKey,
  DEFAULT_TOKEN,
  METHOD_BY_LOWERCASE,
  normalizeChatId,
  type Params,
  TelegramError
} from "./protocol.ts"
import type {
  ChatId,
  FakeDraft,
  FakeMessage,
  FakeTelegramOptions,
  NewUpdate,
  RateViolation,
  TelegramCall,
  TelegramFault,
  WebhookState
} from "./types.ts"
import { UpdateQueue } from "./updates.ts"

export {
  callbackQueryUpdate,
  type CallbackQueryUpdateOptions,
  type ChatOptions,
  type MediaKind,
  mediaMessageUpdate,
  type MediaUpdateOptions,
  mentioningBot,
  migrationUpdate,
  stoppedGenerationUpdate,
  textMessageUpdate,
  type TextUpdateOptions
} from "./builders.ts"
export { RATE_SLACK_MS } from "./faults.ts"
export { DEFAULT_TOKEN } from "./protocol.ts"
export { MAX_MESSAGE_LENGTH } from "./text.ts"
export type * from "./types.ts"

export async function startFakeTelegram(opts: FakeTelegramOptions = {}): Promise<FakeTelegram> {
  const fake = new FakeTelegram(opts)
  await fake.listen()
  return fake
}

export class FakeTelegram {
  readonly token: string
  /** Every call received, in arrival order (including failed and unauthorised ones). */
  readonly calls: Array<TelegramCall> = []
  /** Calls that ignored a 429's retry_after. Tests of a well-behaved bot assert this stays empty. */
  readonly violations: Array<RateViolation> = []

  readonly #server: Server
  readonly #changes = new ChangeNotifier()
  readonly #faults = new FaultInjector()
  readonly #chats = new ChatStore()
  readonly #commands = new CommandMenus()
  readonly #updates: UpdateQueue
  readonly #api: BotApi
  #url = ""
  #closed = false
  #latencyMs = 0

  constructor(opts: FakeTelegramOptions = {}) {
    this.token = opts.token ?? DEFAULT_TOKEN
    this.#updates = new UpdateQueue(this.#changes, (opts.maxPollSeconds ?? 10) * 1000, () => this.#closed)
    this.#api = new BotApi(this.token, this.#chats, this.#updates, this.#commands)
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        // Only a bug in the fake itself lands here; answer something grammY can parse.
        send(res, 500, failure(500, `Internal Server Error: ${String(error)}`))
      })
    })
  }

  /** The apiRoot to give grammY, e.g. `http://127.0.0.1:40123` (no trailing slash). */
  get url(): string {
    return this.#url
  }

  async listen(): Promise<void> {
    this.#url = await listenOnLoopback(this.#server)
  }

  /** Stops the server: pending long polls are dropped and keep-alive connections closed. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#changes.notify()
    await closeServer(this.#server)
  }

  // --- controls -------------------------------------------------------------------------------

  /** Queues an update for getUpdates. `update_id` is assigned (increasing) when omitted. */
  pushUpdate(update: NewUpdate): Update {
    const full = this.#updates.push(update)
    this.#changes.notify()
    return full
  }

  /** Updates queued and not yet confirmed by a getUpdates offset. */
  pendingUpdates(): ReadonlyArray<Update> {
    return this.#updates.pending()
  }

  /** The next `times` calls of `method` fail with `fault` (queued after earlier failNext calls). */
  failNext(method: string, fault: TelegramFault, times = 1): void {
    this.#faults.failNext(method, fault, times)
  }

  /** Every call of `method` fails with `fault` for the next `durationMs` (an outage). */
  failFor(method: string, fault: TelegramFault, durationMs: number): void {
    this.#faults.failFor(method, fault, durationMs)
  }

  /** Every send/edit/action/delete to this chat answers 403 "Forbidden: bot was blocked by the user". */
  blockChat(chatId: ChatId): void {
    this.#faults.blockChat(chatId)
  }

  unblockChat(chatId: ChatId): void {
    this.#faults.unblockChat(chatId)
  }

  /**
   * The group was upgraded to the supergroup `newChatId`: every send/edit/draft/action/delete to
   * `oldChatId` answers 400 "group chat was upgraded to a supergroup chat" with
   * `parameters.migrate_to_chat_id`. (Push `migrationUpdate` for the service message.)
   */
  migrateChat(oldChatId: ChatId, newChatId: number): void {
    this.#faults.migrateChat(oldChatId, newChatId)
  }

  /**
   * Makes the chat a forum with these topics: a send, draft or chat action there with a
   * `message_thread_id` not among them answers 400 "message thread not found" (without a forum
   * any thread id is accepted). A forum group's chat object gets `is_forum: true`.
   */
  makeForum(chatId: ChatId, topicIds: ReadonlyArray<number>): void {
    this.#chats.makeForum(chatKey(chatId), topicIds)
  }

  /** Makes the user an administrator of the group (getChatMember says "administrator"; others are "member"). */
  makeAdmin(chatId: ChatId, userId: number): void {
    this.#chats.makeAdmin(chatKey(chatId), userId)
  }

  /** Delay applied to every call before it is processed (0 = none). */
  setLatency(ms: number): void {
    this.#latencyMs = Math.max(0, ms)
  }

  get webhook(): WebhookState | undefined {
    return this.#updates.webhook
  }

  /**
   * Forgets everything: calls, violations, chats, forums, commands, updates, faults, blocks,
   * migrations, latency, webhook.
   */
  reset(): void {
    this.calls.length = 0
    this.violations.length = 0
    this.#chats.clear()
    this.#commands.clear()
    this.#faults.reset()
    this.#updates.reset()
    this.#latencyMs = 0
    this.#changes.notify()
  }

  // --- inspection -----------------------------------------------------------------------------

  /** The chat's visible (not deleted) messages in send order; snapshots, not live objects. */
  messages(chatId: ChatId): Array<FakeMessage> {
    return this.#chats.messages(chatKey(chatId))
  }

  message(chatId: ChatId, messageId: number): FakeMessage | undefined {
    return this.messages(chatId).find((m) => m.message_id === messageId)
  }

  lastMessage(chatId: ChatId): FakeMessage | undefined {
    return this.messages(chatId).at(-1)
  }

  /** Current drafts of the chat (sendMessageDraft), cleared when the bot sends a message there. */
  drafts(chatId: ChatId): Array<FakeDraft> {
    return this.#chats.drafts(chatKey(chatId))
  }

  /** The commands setMyCommands set for this language ("" = all) and scope (default: the default scope), if ever. */
  commands(languageCode = "", scope?: BotCommandScope): ReadonlyArray<BotCommand> | undefined {
    return this.#commands.commands(languageCode, scope)
  }

  /** Calls addressed to the chat, optionally only those of one method. */
  callsFor(chatId: ChatId, method?: string): Array<TelegramCall> {
    const id = chatKey(chatId)
    return this.calls.filter((c) => c.chatId === id && (method === undefined || c.method === method))
  }

  /**
   * Resolves with the predicate's first truthy result. It is re-evaluated after every state change
   * (call received or answered, update pushed) and at least every 50 ms; a predicate that throws
   * counts as "not yet". Rejects after `timeoutMs` with the last calls in the message.
   */
  waitFor<T>(predicate: (fake: FakeTelegram) => T | false | null | undefined, timeoutMs = 5_000): Promise<T> {
    return waitForCondition(() => predicate(this), {
      label: "FakeTelegram.waitFor",
      timeoutMs,
      notifier: this.#changes,
      describeState: () => `Last calls: ${this.calls.slice(-8).map(describeCall).join(", ") || "none"}`
    })
  }

  // --- HTTP -----------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake")
    const route = /^\/bot([^/]+)\/([^/]+)$/.exec(url.pathname)
    if (route === null) {
      send(res, 404, failure(404, "Not Found"))
      return
    }
    // Ends early waits (getUpdates, latency) when the client goes away.
    const disconnected = new AbortController()
    res.on("close", () => {
      if (!res.writableFinished) disconnected.abort()
    })

    let params: Params
    try {
      params = await readParams(req, url)
    } catch (error) {
      send(res, 400, failure(400, `Bad Request: ${String(error)}`))
      return
    }
    const methodName = route[2] ?? ""
    const method = METHOD_BY_LOWERCASE.get(methodName.toLowerCase())
    const call: TelegramCall = {
      method: method ?? methodName,
      params,
      at: Date.now(),
      chatId: normalizeChatId(params["chat_id"])
    }
    this.calls.push(call)
    const violation = this.#faults.violationBy(call)
    if (violation !== undefined) this.violations.push(violation)
    this.#changes.notify()

    let status: number
    let body: unknown
    if (route[1] !== this.token) {
      status = 401
      body = failure(401, "Unauthorized")
    } else if (method === undefined) {
      status = 404
      body = failure(404, "Not Found: method not found")
    } else {
      if (this.#latencyMs > 0) await delay(this.#latencyMs, disconnected.signal)
      try {
        this.#faults.admit(method, call)
        const result = await this.#api.call(method, call, params, disconnected.signal)
        status = 200
        body = { ok: true, result }
      } catch (error) {
        if (error instanceof DroppedConnection) {
          call.status = 0
          res.socket?.destroy()
          this.#changes.notify()
          return
        }
        if (!(error instanceof TelegramError)) throw error
        status = error.code
        body = failure(error.code, error.message, error.parameters)
        call.description = error.message
      }
    }
    call.status = status
    send(res, status, body)
    this.#changes.notify()
  }
}

function describeCall(c: TelegramCall): string {
  const chat = c.chatId === undefined ? "" : ` chat ${String(c.chatId)}`
  return `${c.method}${chat} -> ${c.status ?? "pending"}`
}
