/**
 * A fake Telegram Bot API server for integration tests and the benchmark.
 *
 * It speaks real HTTP on 127.0.0.1 (ephemeral port), so the bot talks to it through grammY's
 * real `Api` client: `new Api(token, { apiRoot: fake.url })`. It keeps per-chat state (messages,
 * drafts), a log of every call, validates text the way Telegram does (empty / too long / broken
 * HTML or MarkdownV2 / "message is not modified"), and can inject faults (429 with retry_after,
 * 5xx, 400/403, blocked chats). After a 429 it also checks that the client honoured retry_after:
 * every call that arrives too early is recorded in `violations`.
 *
 * Not covered: file uploads (multipart), inline messages, legacy `Markdown` parse mode (text is
 * kept verbatim), delivery of updates to a webhook (tests post updates to the bot themselves).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { Update } from "grammy/types"
import { ChangeNotifier, closeServer, delay, listenOnLoopback, waitForCondition } from "./LoopbackServer.ts"

// ---------------------------------------------------------------------------------------------
// Public types

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

export interface FakeMessage {
  readonly chat_id: ChatId
  readonly message_id: number
  /** Visible text: tags stripped, HTML entities decoded, MarkdownV2 markup and escapes removed. */
  readonly text: string
  /** The text exactly as the bot sent it. */
  readonly raw: string
  /** Same as `raw` when `parse_mode` is "HTML", otherwise undefined. */
  readonly html: string | undefined
  readonly parse_mode: string | undefined
  /** Entities parsed from HTML/MarkdownV2, or the `entities` the bot passed explicitly. */
  readonly entities: ReadonlyArray<FakeEntity>
  readonly reply_markup: unknown
  /** Unix time in seconds. */
  readonly date: number
  readonly edit_date: number | undefined
  /** How many successful editMessageText calls changed this message. */
  readonly edit_count: number
}

export interface FakeDraft {
  readonly chat_id: ChatId
  readonly draft_id: number
  readonly text: string
  readonly raw: string
  readonly parse_mode: string | undefined
  readonly entities: ReadonlyArray<FakeEntity>
}

export type TelegramFault =
  | { readonly code: 429; readonly retryAfter: number }
  | { readonly code: 500 | 502; readonly description?: string }
  | { readonly code: 400 | 403; readonly description: string }

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

export const DEFAULT_TOKEN = "123456:TEST-TOKEN"
/** Telegram's limit for a message text after entity parsing, in UTF-16 code units. */
export const MAX_MESSAGE_LENGTH = 4096
/** Calls arriving less than this before the end of a retry_after window are not violations (timer jitter). */
export const RATE_SLACK_MS = 25

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
  "deleteMessage"
] as const
type Method = (typeof METHODS)[number]

/** Methods that address a chat: they are subject to `blockChat` and per-chat rate blocks. */
const CHAT_METHODS: ReadonlySet<Method> = new Set<Method>([
  "sendMessage",
  "editMessageText",
  "sendChatAction",
  "sendMessageDraft",
  "deleteMessage"
])

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

// Telegram method names are case-insensitive.
const METHOD_BY_LOWERCASE = new Map<string, Method>(METHODS.map((m) => [m.toLowerCase(), m]))

type Params = Record<string, unknown>

// ---------------------------------------------------------------------------------------------
// Server

export async function startFakeTelegram(opts: FakeTelegramOptions = {}): Promise<FakeTelegram> {
  const fake = new FakeTelegram(opts)
  await fake.listen()
  return fake
}

interface ChatState {
  nextMessageId: number
  readonly messages: Array<MutableMessage>
  readonly drafts: Map<number, FakeDraft>
}

type MutableMessage = { -readonly [K in keyof FakeMessage]: FakeMessage[K] } & { deleted: boolean }

/** An API error answered in Telegram's shape. */
class TelegramError extends Error {
  readonly code: number
  readonly retryAfter: number | undefined
  constructor(code: number, description: string, retryAfter?: number) {
    super(description)
    this.code = code
    this.retryAfter = retryAfter
  }
}

const badRequest = (what: string) => new TelegramError(400, `Bad Request: ${what}`)

export class FakeTelegram {
  readonly token: string
  /** Every call received, in arrival order (including failed and unauthorised ones). */
  readonly calls: Array<TelegramCall> = []
  /** Calls that ignored a 429's retry_after. Tests of a well-behaved bot assert this stays empty. */
  readonly violations: Array<RateViolation> = []

  readonly #server: Server
  readonly #maxPollMs: number
  readonly #changes = new ChangeNotifier()
  #url = ""
  #closed = false
  #latencyMs = 0
  #chats = new Map<ChatId, ChatState>()
  #faults = new Map<Method, Array<TelegramFault>>()
  #outages = new Map<Method, { readonly fault: TelegramFault; readonly until: number }>()
  #blockedChats = new Set<ChatId>()
  /** Rate-limit windows opened by 429 answers: "chat:<id>" or "global" -> Date.now() when they end. */
  #rateBlocks = new Map<string, number>()
  #updates: Array<Update> = []
  #nextUpdateId = 1
  #webhook: WebhookState | undefined

  constructor(opts: FakeTelegramOptions = {}) {
    this.token = opts.token ?? DEFAULT_TOKEN
    this.#maxPollMs = (opts.maxPollSeconds ?? 10) * 1000
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        // Only a bug in the fake itself lands here; answer something grammY can parse.
        send(res, 500, { ok: false, error_code: 500, description: `Internal Server Error: ${String(error)}` })
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
  pushUpdate(update: Omit<Update, "update_id"> & { update_id?: number }): Update {
    const update_id = update.update_id ?? this.#nextUpdateId
    this.#nextUpdateId = Math.max(this.#nextUpdateId, update_id + 1)
    const full: Update = { ...update, update_id }
    this.#updates.push(full)
    this.#changes.notify()
    return full
  }

  /** Updates queued and not yet confirmed by a getUpdates offset. */
  pendingUpdates(): ReadonlyArray<Update> {
    return [...this.#updates]
  }

  /** The next `times` calls of `method` fail with `fault` (queued after earlier failNext calls). */
  failNext(method: string, fault: TelegramFault, times = 1): void {
    const known = METHOD_BY_LOWERCASE.get(method.toLowerCase())
    if (known === undefined) throw new Error(`FakeTelegram.failNext: unknown method "${method}"`)
    const queue = this.#faults.get(known) ?? []
    for (let i = 0; i < times; i++) queue.push(fault)
    this.#faults.set(known, queue)
  }

  /** Every call of `method` fails with `fault` for the next `durationMs` (an outage). */
  failFor(method: string, fault: TelegramFault, durationMs: number): void {
    const known = METHOD_BY_LOWERCASE.get(method.toLowerCase())
    if (known === undefined) throw new Error(`FakeTelegram.failFor: unknown method "${method}"`)
    this.#outages.set(known, { fault, until: Date.now() + durationMs })
  }

  /** Every send/edit/action/delete to this chat answers 403 "Forbidden: bot was blocked by the user". */
  blockChat(chatId: ChatId): void {
    this.#blockedChats.add(normalizeChatId(chatId) ?? chatId)
  }

  unblockChat(chatId: ChatId): void {
    this.#blockedChats.delete(normalizeChatId(chatId) ?? chatId)
  }

  /** Delay applied to every call before it is processed (0 = none). */
  setLatency(ms: number): void {
    this.#latencyMs = Math.max(0, ms)
  }

  get webhook(): WebhookState | undefined {
    return this.#webhook
  }

  /** Forgets everything: calls, violations, chats, updates, faults, blocks, latency, webhook. */
  reset(): void {
    this.calls.length = 0
    this.violations.length = 0
    this.#chats.clear()
    this.#faults.clear()
    this.#outages.clear()
    this.#blockedChats.clear()
    this.#rateBlocks.clear()
    this.#updates = []
    this.#nextUpdateId = 1
    this.#latencyMs = 0
    this.#webhook = undefined
    this.#changes.notify()
  }

  // --- inspection -----------------------------------------------------------------------------

  /** The chat's visible (not deleted) messages in send order; snapshots, not live objects. */
  messages(chatId: ChatId): Array<FakeMessage> {
    const chat = this.#chats.get(normalizeChatId(chatId) ?? chatId)
    return (chat?.messages ?? []).filter((m) => !m.deleted).map(snapshot)
  }

  message(chatId: ChatId, messageId: number): FakeMessage | undefined {
    return this.messages(chatId).find((m) => m.message_id === messageId)
  }

  lastMessage(chatId: ChatId): FakeMessage | undefined {
    return this.messages(chatId).at(-1)
  }

  /** Current drafts of the chat (sendMessageDraft), cleared when the bot sends a message there. */
  drafts(chatId: ChatId): Array<FakeDraft> {
    return [...(this.#chats.get(normalizeChatId(chatId) ?? chatId)?.drafts.values() ?? [])]
  }

  /** Calls addressed to the chat, optionally only those of one method. */
  callsFor(chatId: ChatId, method?: string): Array<TelegramCall> {
    const id = normalizeChatId(chatId) ?? chatId
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
      send(res, 404, { ok: false, error_code: 404, description: "Not Found" })
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
      send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${String(error)}` })
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
    this.#checkRateHonesty(call)
    this.#changes.notify()

    let status: number
    let body: unknown
    if (route[1] !== this.token) {
      status = 401
      body = { ok: false, error_code: 401, description: "Unauthorized" }
    } else if (method === undefined) {
      status = 404
      body = { ok: false, error_code: 404, description: "Not Found: method not found" }
    } else {
      if (this.#latencyMs > 0) await delay(this.#latencyMs, disconnected.signal)
      try {
        const result = await this.#dispatch(method, call, params, disconnected.signal)
        status = 200
        body = { ok: true, result }
      } catch (error) {
        if (!(error instanceof TelegramError)) throw error
        status = error.code
        body = {
          ok: false,
          error_code: error.code,
          description: error.message,
          ...(error.retryAfter === undefined ? {} : { parameters: { retry_after: error.retryAfter } })
        }
        call.description = error.message
      }
    }
    call.status = status
    send(res, status, body)
    this.#changes.notify()
  }

  async #dispatch(method: Method, call: TelegramCall, p: Params, signal: AbortSignal): Promise<unknown> {
    const outage = this.#outages.get(method)
    const fault = this.#faults.get(method)?.shift() ?? (outage !== undefined && Date.now() < outage.until ? outage.fault : undefined)
    if (fault !== undefined) throw this.#faultError(fault, call)
    if (call.chatId !== undefined && CHAT_METHODS.has(method) && this.#blockedChats.has(call.chatId)) {
      throw new TelegramError(403, "Forbidden: bot was blocked by the user")
    }
    switch (method) {
      case "getMe":
        return this.#botUser()
      case "setWebhook":
        return this.#setWebhook(p)
      case "deleteWebhook":
        this.#webhook = undefined
        if (p["drop_pending_updates"] === true) this.#updates = []
        return true
      case "getWebhookInfo":
        return {
          url: this.#webhook?.url ?? "",
          has_custom_certificate: false,
          pending_update_count: this.#updates.length,
          ...(this.#webhook?.max_connections === undefined ? {} : { max_connections: this.#webhook.max_connections })
        }
      case "getUpdates":
        return this.#getUpdates(p, signal)
      case "sendMessage":
        return this.#sendMessage(requireChat(call), p)
      case "editMessageText":
        return this.#editMessageText(p, call)
      case "sendChatAction":
        requireChat(call)
        if (typeof p["action"] !== "string" || !CHAT_ACTIONS.has(p["action"])) {
          throw badRequest("wrong parameter action in request")
        }
        return true
      case "sendMessageDraft":
        return this.#sendMessageDraft(requireChat(call), p)
      case "deleteMessage":
        return this.#deleteMessage(requireChat(call), p)
    }
  }

  #faultError(fault: TelegramFault, call: TelegramCall): TelegramError {
    switch (fault.code) {
      case 429: {
        const key = rateKey(call.chatId)
        const until = Date.now() + fault.retryAfter * 1000
        this.#rateBlocks.set(key, Math.max(until, this.#rateBlocks.get(key) ?? 0))
        return new TelegramError(429, `Too Many Requests: retry after ${fault.retryAfter}`, fault.retryAfter)
      }
      case 500:
        return new TelegramError(500, fault.description ?? "Internal Server Error")
      case 502:
        return new TelegramError(502, fault.description ?? "Bad Gateway")
      case 400:
      case 403:
        return new TelegramError(fault.code, fault.description)
    }
  }

  #checkRateHonesty(call: TelegramCall): void {
    const blockedUntil = this.#rateBlocks.get(rateKey(call.chatId))
    if (blockedUntil !== undefined && call.at < blockedUntil - RATE_SLACK_MS) {
      this.violations.push({
        method: call.method,
        chatId: call.chatId,
        at: call.at,
        blockedUntil,
        earlyByMs: blockedUntil - call.at
      })
    }
  }

  // --- methods --------------------------------------------------------------------------------

  #botUser() {
    const id = Number.parseInt(this.token.split(":")[0] ?? "", 10)
    return {
      id: Number.isFinite(id) ? id : 123456,
      is_bot: true,
      first_name: "Fake Bot",
      username: "fake_test_bot",
      can_join_groups: true,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
      can_connect_to_business: false,
      has_main_web_app: false
    }
  }

  #setWebhook(p: Params): true {
    const url = typeof p["url"] === "string" ? p["url"] : ""
    if (p["drop_pending_updates"] === true) this.#updates = []
    this.#webhook =
      url === ""
        ? undefined
        : {
            url,
            secret_token: typeof p["secret_token"] === "string" ? p["secret_token"] : undefined,
            allowed_updates: p["allowed_updates"],
            max_connections: typeof p["max_connections"] === "number" ? p["max_connections"] : undefined
          }
    return true
  }

  async #getUpdates(p: Params, signal: AbortSignal): Promise<Array<Update>> {
    if (this.#webhook !== undefined) {
      throw new TelegramError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
      )
    }
    const offset = optionalInt(p, "offset") ?? 0
    const limit = Math.min(Math.max(optionalInt(p, "limit") ?? 100, 1), 100)
    const timeoutMs = Math.min(Math.max(optionalInt(p, "timeout") ?? 0, 0) * 1000, this.#maxPollMs)
    // Like Telegram: an offset confirms (and forgets) every earlier update; a negative one keeps the last -offset.
    if (offset > 0) this.#updates = this.#updates.filter((u) => u.update_id >= offset)
    if (offset < 0) this.#updates = this.#updates.slice(offset)

    const deadline = Date.now() + timeoutMs
    while (this.#updates.length === 0 && !this.#closed && !signal.aborted) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) break
      await this.#changes.next(remaining, signal)
    }
    return this.#updates.slice(0, limit)
  }

  #sendMessage(chatId: ChatId, p: Params) {
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
    return this.#toTelegramMessage(message)
  }

  #editMessageText(p: Params, call: TelegramCall) {
    if (p["inline_message_id"] !== undefined) {
      throw badRequest("inline messages are not supported by the fake")
    }
    const chatId = requireChat(call)
    const messageId = optionalInt(p, "message_id")
    if (messageId === undefined) throw badRequest("message identifier is not specified")
    const content = formatContent(p, { allowEmpty: false })
    const message = this.#chats.get(chatId)?.messages.find((m) => m.message_id === messageId && !m.deleted)
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
    return this.#toTelegramMessage(message)
  }

  #sendMessageDraft(chatId: ChatId, p: Params): true {
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

  #deleteMessage(chatId: ChatId, p: Params): true {
    const messageId = optionalInt(p, "message_id")
    const message = this.#chats.get(chatId)?.messages.find((m) => m.message_id === messageId && !m.deleted)
    if (message === undefined) throw badRequest("message to delete not found")
    message.deleted = true
    return true
  }

  #chat(chatId: ChatId): ChatState {
    let chat = this.#chats.get(chatId)
    if (chat === undefined) {
      chat = { nextMessageId: 1, messages: [], drafts: new Map() }
      this.#chats.set(chatId, chat)
    }
    return chat
  }

  #toTelegramMessage(m: FakeMessage) {
    return {
      message_id: m.message_id,
      date: m.date,
      ...(m.edit_date === undefined ? {} : { edit_date: m.edit_date }),
      chat: chatObject(m.chat_id),
      from: this.#botUser(),
      text: m.text,
      ...(m.entities.length === 0 ? {} : { entities: m.entities }),
      ...(m.reply_markup === undefined ? {} : { reply_markup: m.reply_markup })
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Update builders

export interface TextUpdateOptions {
  readonly chatId: number
  readonly text: string
  /** Defaults to chatId (a private chat). */
  readonly userId?: number
  readonly messageId?: number
  readonly firstName?: string
  readonly updateId?: number
  /** Makes it a group chat with this title (give a negative chatId and a userId). */
  readonly groupTitle?: string
}

/** A text message update (private chat unless groupTitle is set), for `pushUpdate` or the webhook. */
export function textMessageUpdate(opts: TextUpdateOptions): Omit<Update, "update_id"> & { update_id?: number } {
  const userId = opts.userId ?? opts.chatId
  const firstName = opts.firstName ?? "Tester"
  return {
    ...(opts.updateId === undefined ? {} : { update_id: opts.updateId }),
    message: {
      message_id: opts.messageId ?? 1,
      date: nowSeconds(),
      chat: opts.groupTitle === undefined
        ? { id: opts.chatId, type: "private", first_name: firstName }
        : { id: opts.chatId, type: "group", title: opts.groupTitle },
      from: { id: userId, is_bot: false, first_name: firstName },
      text: opts.text
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Message text: parse modes and Telegram's validation

interface FormattedText {
  readonly text: string
  readonly entities: Array<FakeEntity>
}

interface MessageContent extends FormattedText {
  readonly raw: string
  readonly html: string | undefined
  readonly parse_mode: string | undefined
}

function formatContent(p: Params, opts: { readonly allowEmpty: boolean }): MessageContent {
  const raw = typeof p["text"] === "string" ? p["text"] : p["text"] === undefined ? "" : String(p["text"])
  const parseMode = typeof p["parse_mode"] === "string" && p["parse_mode"] !== "" ? p["parse_mode"] : undefined
  const formatted = formatText(raw, parseMode, p["entities"])
  if (!opts.allowEmpty && formatted.text.trim() === "") throw badRequest("message text is empty")
  if (formatted.text.length > MAX_MESSAGE_LENGTH) throw badRequest("message is too long")
  return { ...formatted, raw, html: parseMode === "HTML" ? raw : undefined, parse_mode: parseMode }
}

function formatText(raw: string, parseMode: string | undefined, entities: unknown): FormattedText {
  switch (parseMode) {
    case undefined:
      return { text: raw, entities: Array.isArray(entities) ? (entities as Array<FakeEntity>) : [] }
    case "HTML":
      return parseHtml(raw)
    case "MarkdownV2":
      return parseMarkdownV2(raw)
    case "Markdown":
      // Legacy Markdown is not interpreted: the text is stored verbatim.
      return { text: raw, entities: [] }
    default:
      throw badRequest("unsupported parse_mode")
  }
}

const entityError = (what: string) => badRequest(`can't parse entities: ${what}`)

/** Telegram reports positions as byte offsets in the UTF-8 encoded text. */
const byteOffset = (input: string, index: number) => Buffer.byteLength(input.slice(0, index), "utf8")

const sortEntities = (entities: Array<FakeEntity>) =>
  entities.sort((a, b) => a.offset - b.offset || b.length - a.length)

// --- HTML ---------------------------------------------------------------------------------------

const HTML_TAG_ENTITY: Readonly<Record<string, string>> = {
  b: "bold",
  strong: "bold",
  i: "italic",
  em: "italic",
  u: "underline",
  ins: "underline",
  s: "strikethrough",
  strike: "strikethrough",
  del: "strikethrough",
  code: "code",
  pre: "pre",
  a: "text_link",
  blockquote: "blockquote",
  "tg-spoiler": "spoiler",
  span: "spoiler"
}

const NAMED_HTML_ENTITIES: Readonly<Record<string, string>> = { lt: "<", gt: ">", amp: "&", quot: '"' }
const HTML_ENTITY = /&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));/y

interface OpenTag {
  readonly name: string
  readonly attrs: ReadonlyMap<string, string>
  readonly offset: number
  language?: string
}

/** Reads `&lt;`-style and numeric entities at `index`; undefined when there is none. */
function readHtmlEntity(input: string, index: number): { readonly char: string; readonly length: number } | undefined {
  HTML_ENTITY.lastIndex = index
  const match = HTML_ENTITY.exec(input)
  if (match === null) return undefined
  const [whole, named, decimal, hex] = match
  if (named !== undefined) return { char: NAMED_HTML_ENTITIES[named] ?? "", length: whole.length }
  const code = decimal !== undefined ? Number.parseInt(decimal, 10) : Number.parseInt(hex ?? "", 16)
  if (!(code > 0 && code <= 0x10ffff)) return undefined
  return { char: String.fromCodePoint(code), length: whole.length }
}

/** Telegram HTML: only its tag set, properly nested and closed; `<` and `&` must be escaped. */
function parseHtml(input: string): FormattedText {
  let text = ""
  const entities: Array<FakeEntity> = []
  const open: Array<OpenTag> = []
  let i = 0
  while (i < input.length) {
    const c = input[i]
    if (c === "&") {
      const entity = readHtmlEntity(input, i)
      if (entity === undefined) {
        throw entityError(`Character '&' at byte offset ${byteOffset(input, i)} must be escaped as "&amp;"`)
      }
      text += entity.char
      i += entity.length
    } else if (c !== "<") {
      text += c
      i++
    } else if (input[i + 1] === "/") {
      const end = input.indexOf(">", i)
      if (end === -1) throw entityError(`Unclosed end tag at byte offset ${byteOffset(input, i)}`)
      const name = input.slice(i + 2, end).trim().toLowerCase()
      const tag = open.pop()
      if (tag === undefined) throw entityError(`Unexpected end tag at byte offset ${byteOffset(input, i)}`)
      if (name !== tag.name) {
        throw entityError(
          `Unmatched end tag at byte offset ${byteOffset(input, i)}, expected "</${tag.name}>", found "</${name}>"`
        )
      }
      closeHtmlTag(tag, open.at(-1), text.length, entities)
      i = end + 1
    } else {
      const tag = readStartTag(input, i)
      open.push({ name: tag.name, attrs: tag.attrs, offset: text.length })
      i = tag.end
    }
  }
  const unclosed = open.at(-1)
  if (unclosed !== undefined) throw entityError(`Can't find end tag corresponding to start tag "${unclosed.name}"`)
  return { text, entities: sortEntities(entities) }
}

function readStartTag(input: string, start: number): { name: string; attrs: Map<string, string>; end: number } {
  const at = () => `at byte offset ${byteOffset(input, start)}`
  const isSpace = (ch: string | undefined) => ch !== undefined && /\s/.test(ch)
  let i = start + 1
  while (i < input.length && !isSpace(input[i]) && input[i] !== ">") i++
  const name = input.slice(start + 1, i).toLowerCase()
  if (i >= input.length) throw entityError(`Unclosed start tag ${at()}`)
  if (!(name in HTML_TAG_ENTITY)) throw entityError(`Unsupported start tag "${name}" ${at()}`)

  const attrs = new Map<string, string>()
  for (;;) {
    while (isSpace(input[i])) i++
    if (i >= input.length) throw entityError(`Unclosed start tag ${at()}`)
    if (input[i] === ">") {
      i++
      break
    }
    const nameStart = i
    while (i < input.length && !isSpace(input[i]) && input[i] !== "=" && input[i] !== ">") i++
    const attrName = input.slice(nameStart, i).toLowerCase()
    if (attrName === "") throw entityError(`Empty attribute name in the tag "${name}" ${at()}`)
    while (isSpace(input[i])) i++
    let value = ""
    if (input[i] === "=") {
      i++
      while (isSpace(input[i])) i++
      const quote = input[i]
      if (quote === '"' || quote === "'") {
        const close = input.indexOf(quote, i + 1)
        if (close === -1) throw entityError(`Unclosed start tag ${at()}`)
        value = input.slice(i + 1, close)
        i = close + 1
      } else {
        const valueStart = i
        while (i < input.length && !isSpace(input[i]) && input[i] !== ">") i++
        value = input.slice(valueStart, i)
      }
    }
    attrs.set(attrName, decodeAttribute(value))
  }
  if (name === "span" && attrs.get("class") !== "tg-spoiler") {
    throw entityError(`Tag "span" must have class "tg-spoiler" ${at()}`)
  }
  return { name, attrs, end: i }
}

/** Attribute values (e.g. hrefs) are decoded leniently: an unknown `&` stays literal. */
function decodeAttribute(value: string): string {
  let out = ""
  for (let i = 0; i < value.length; ) {
    const entity = value[i] === "&" ? readHtmlEntity(value, i) : undefined
    out += entity?.char ?? value[i]
    i += entity?.length ?? 1
  }
  return out
}

function closeHtmlTag(tag: OpenTag, parent: OpenTag | undefined, end: number, entities: Array<FakeEntity>): void {
  const offset = tag.offset
  const length = end - offset
  const language = /^language-(.+)$/.exec(tag.attrs.get("class") ?? "")?.[1]
  if (tag.name === "code" && parent?.name === "pre" && language !== undefined) {
    // <pre><code class="language-x"> is a single pre entity with a language.
    parent.language = language
    return
  }
  if (length === 0) return
  switch (tag.name) {
    case "a": {
      const href = tag.attrs.get("href")
      if (href !== undefined && href !== "") entities.push({ type: "text_link", offset, length, url: href })
      return
    }
    case "pre":
      entities.push({ type: "pre", offset, length, ...(tag.language === undefined ? {} : { language: tag.language }) })
      return
    case "blockquote":
      entities.push({ type: tag.attrs.has("expandable") ? "expandable_blockquote" : "blockquote", offset, length })
      return
    default:
      entities.push({ type: HTML_TAG_ENTITY[tag.name] ?? tag.name, offset, length })
  }
}

// --- MarkdownV2 -----------------------------------------------------------------------------------

const MARKDOWN_RESERVED = "_*[]()~`>#+-=|{}.!"

type MarkdownEntity =
  | "bold"
  | "italic"
  | "underline"
  | "strikethrough"
  | "spoiler"
  | "code"
  | "pre"
  | "text_link"
  | "custom_emoji"

/** Names Telegram uses in "Can't find end of X entity" errors. */
const MARKDOWN_ENTITY_NAME: Readonly<Record<MarkdownEntity, string>> = {
  bold: "Bold",
  italic: "Italic",
  underline: "Underline",
  strikethrough: "Strikethrough",
  spoiler: "Spoiler",
  code: "Code",
  pre: "Pre",
  text_link: "TextUrl",
  custom_emoji: "CustomEmoji"
}

interface OpenMarkdownEntity {
  readonly type: MarkdownEntity
  readonly offset: number
  readonly byteOffset: number
  readonly language: string | undefined
}

const isAsciiEscapable = (input: string, index: number) => {
  const code = input.charCodeAt(index)
  return code >= 1 && code <= 126
}

/** Whether the character at `i` ends the innermost open entity. */
function endsEntity(type: MarkdownEntity, input: string, i: number): boolean {
  const c = input[i]
  switch (type) {
    case "bold":
      return c === "*"
    case "italic":
      return c === "_" && input[i + 1] !== "_"
    case "underline":
      return c === "_" && input[i + 1] === "_"
    case "strikethrough":
      return c === "~"
    case "spoiler":
      return c === "|" && input[i + 1] === "|"
    case "code":
      return c === "`"
    case "pre":
      return input.startsWith("```", i)
    case "text_link":
    case "custom_emoji":
      return c === "]"
  }
}

/**
 * Telegram MarkdownV2, following TDLib's parser: outside code, every character of
 * `_*[]()~\`>#+-=|{}.!` must be escaped with `\` unless it is entity markup; `>` at the start of a
 * line opens a block quote (`**>` an expandable one, closed by `||` at the end of a line).
 */
function parseMarkdownV2(input: string): FormattedText {
  let text = ""
  const entities: Array<FakeEntity> = []
  const open: Array<OpenMarkdownEntity> = []
  let quote: { offset: number; expandable: boolean } | undefined
  const closeQuote = (end: number) => {
    if (quote !== undefined && end > quote.offset) {
      entities.push({ type: quote.expandable ? "expandable_blockquote" : "blockquote", offset: quote.offset, length: end - quote.offset })
    }
    quote = undefined
  }
  const reservedError = (c: string) =>
    entityError(`Character '${c}' is reserved and must be escaped with the preceding '\\'`)

  for (let i = 0; i < input.length; i++) {
    const c = input[i] ?? ""
    const top = open.at(-1)
    const inCode = top?.type === "code" || top?.type === "pre"

    if (!inCode && (i === 0 || input[i - 1] === "\n")) {
      if (input.startsWith("**>", i)) {
        closeQuote(text.length - 1)
        quote = { offset: text.length, expandable: true }
        i += 2
        continue
      }
      if (c === ">") {
        quote ??= { offset: text.length, expandable: false }
        continue
      }
      // A line without '>' ends the quote (its trailing newline is not part of it).
      closeQuote(text.length - 1)
    }

    if (c === "\\" && isAsciiEscapable(input, i + 1)) {
      text += input[i + 1]
      i++
      continue
    }

    if (
      quote?.expandable === true &&
      !inCode &&
      top?.type !== "spoiler" &&
      input.startsWith("||", i) &&
      (i + 2 === input.length || input[i + 2] === "\n")
    ) {
      closeQuote(text.length)
      i++
      continue
    }

    const reserved = inCode ? "`" : MARKDOWN_RESERVED
    if (!reserved.includes(c)) {
      text += c
      continue
    }

    if (top !== undefined && endsEntity(top.type, input, i)) {
      open.pop()
      let extra: { url?: string; custom_emoji_id?: string; language?: string } = {}
      switch (top.type) {
        case "underline":
        case "spoiler":
          i++
          break
        case "pre":
          i += 2
          if (top.language !== undefined) extra = { language: top.language }
          break
        case "text_link":
        case "custom_emoji": {
          let url = ""
          if (input[i + 1] === "(") {
            const urlStart = i + 2
            let j = urlStart
            while (j < input.length && input[j] !== ")") {
              if (input[j] === "\\" && isAsciiEscapable(input, j + 1)) {
                url += input[j + 1]
                j += 2
              } else {
                url += input[j]
                j++
              }
            }
            if (j >= input.length) throw entityError(`Can't find end of a URL at byte offset ${byteOffset(input, urlStart)}`)
            i = j
          } else {
            url = text.slice(top.offset)
          }
          if (top.type === "text_link") {
            extra = { url }
          } else {
            const id = /^tg:\/\/emoji\?id=(\d+)$/.exec(url)?.[1]
            if (id === undefined) throw entityError("Custom emoji entity must contain a tg://emoji URL")
            extra = { custom_emoji_id: id }
          }
          break
        }
        default:
          break
      }
      if (text.length > top.offset) {
        entities.push({ type: top.type, offset: top.offset, length: text.length - top.offset, ...extra })
      }
      continue
    }

    // Start of an entity, or a reserved character that should have been escaped.
    const entityByteOffset = byteOffset(input, i)
    let type: MarkdownEntity
    let language: string | undefined
    switch (c) {
      case "_":
        if (input[i + 1] === "_") {
          type = "underline"
          i++
        } else {
          type = "italic"
        }
        break
      case "*":
        type = "bold"
        break
      case "~":
        type = "strikethrough"
        break
      case "|":
        if (input[i + 1] !== "|") throw reservedError(c)
        type = "spoiler"
        i++
        break
      case "[":
        type = "text_link"
        break
      case "!":
        if (input[i + 1] !== "[") throw reservedError(c)
        type = "custom_emoji"
        i++
        break
      case "`":
        if (!input.startsWith("```", i)) {
          type = "code"
          break
        }
        type = "pre"
        i += 3
        {
          // ```language\n...``` : the language runs up to the first whitespace.
          let languageEnd = i
          while (languageEnd < input.length && !/\s/.test(input[languageEnd] ?? "") && input[languageEnd] !== "`") {
            languageEnd++
          }
          if (languageEnd !== i && languageEnd < input.length && input[languageEnd] !== "`") {
            language = input.slice(i, languageEnd)
            i = languageEnd
          }
          // One line break right after the opening fence is not part of the text.
          if (input[i] === "\n" || input[i] === "\r") {
            const next = input[i + 1]
            i += (next === "\n" || next === "\r") && next !== input[i] ? 2 : 1
          }
          i-- // the loop's i++ moves to the first character of the block
        }
        break
      default:
        throw reservedError(c)
    }
    open.push({ type, offset: text.length, byteOffset: entityByteOffset, language })
  }

  const unclosed = open.at(-1)
  if (unclosed !== undefined) {
    throw entityError(
      `Can't find end of ${MARKDOWN_ENTITY_NAME[unclosed.type]} entity at byte offset ${unclosed.byteOffset}`
    )
  }
  closeQuote(text.length)
  return { text, entities: sortEntities(entities) }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.writableEnded) return
  const json = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(json) })
  res.end(json)
}

/** Parameters from the JSON or urlencoded body, merged over the query string. */
async function readParams(req: IncomingMessage, url: URL): Promise<Params> {
  const params: Params = {}
  for (const [key, value] of url.searchParams) params[key] = parseFormValue(value)
  const chunks: Array<Buffer> = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  const body = Buffer.concat(chunks).toString("utf8")
  if (body.trim() === "") return params
  const contentType = req.headers["content-type"] ?? ""
  if (contentType.includes("application/x-www-form-urlencoded")) {
    for (const [key, value] of new URLSearchParams(body)) params[key] = parseFormValue(value)
    return params
  }
  if (contentType.includes("multipart/form-data")) throw new Error("multipart uploads are not supported by the fake")
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    throw new Error("can't parse JSON body")
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("JSON body must be an object")
  return { ...params, ...(parsed as Params) }
}

/** Form values are strings; Telegram accepts JSON-serialised objects and numbers in them. */
function parseFormValue(value: string): unknown {
  if (/^-?\d+$/.test(value)) return Number(value)
  if (value === "true" || value === "false") return value === "true"
  if (value.startsWith("{") || value.startsWith("[")) {
    try {
      return JSON.parse(value)
    } catch {
      return value
    }
  }
  return value
}

/** Numeric strings become numbers so `chat_id: "42"` and `42` are the same chat. */
function normalizeChatId(value: unknown): ChatId | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value
  if (typeof value === "string" && value !== "") return /^-?\d+$/.test(value) ? Number(value) : value
  return undefined
}

function requireChat(call: TelegramCall): ChatId {
  if (call.chatId === undefined) throw badRequest("chat_id is empty")
  return call.chatId
}

function optionalInt(p: Params, key: string): number | undefined {
  const value = p[key]
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value
  return typeof n === "number" && Number.isInteger(n) ? n : undefined
}

const rateKey = (chatId: ChatId | undefined) => (chatId === undefined ? "global" : `chat:${String(chatId)}`)

const nowSeconds = () => Math.floor(Date.now() / 1000)

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null)

function snapshot(m: MutableMessage): FakeMessage {
  const { deleted: _deleted, ...message } = m
  return { ...message, entities: [...m.entities] }
}

function chatObject(chatId: ChatId) {
  if (typeof chatId === "string") {
    // "@channel": Telegram would answer with the channel's numeric id; derive a stable fake one.
    let hash = 0
    for (const ch of chatId) hash = (hash * 31 + ch.charCodeAt(0)) % 1_000_000_000
    return { id: -1_000_000_000_000 - hash, type: "channel", title: chatId, username: chatId.replace(/^@/, "") }
  }
  if (chatId > 0) return { id: chatId, type: "private", first_name: "Tester" }
  if (chatId <= -1_000_000_000_000) return { id: chatId, type: "supergroup", title: "Test supergroup" }
  return { id: chatId, type: "group", title: "Test group" }
}

function describeCall(c: TelegramCall): string {
  const chat = c.chatId === undefined ? "" : ` chat ${String(c.chatId)}`
  return `${c.method}${chat} -> ${c.status ?? "pending"}`
}
