/**
 * Fault injection (queued faults, outages, blocked and migrated chats) and the rate-honesty
 * check: after a 429, calls to the same chat (or, without a chat, to the bot) must wait out its
 * retry_after.
 */
import { chatKey, type Method, METHOD_BY_LOWERCASE, TelegramError } from "./protocol.ts"
import type { ChatId, RateViolation, TelegramCall, TelegramFault } from "./types.ts"

/** Calls arriving less than this before the end of a retry_after window are not violations (timer jitter). */
export const RATE_SLACK_MS = 25

/** Methods that address a chat: they are subject to `blockChat`, `migrateChat` and per-chat rate blocks. */
const CHAT_METHODS: ReadonlySet<Method> = new Set<Method>([
  "sendMessage",
  "editMessageText",
  "sendChatAction",
  "sendMessageDraft",
  "deleteMessage"
])

const rateKey = (chatId: ChatId | undefined) => (chatId === undefined ? "global" : `chat:${String(chatId)}`)

function knownMethod(method: string, caller: string): Method {
  const known = METHOD_BY_LOWERCASE.get(method.toLowerCase())
  if (known === undefined) throw new Error(`FakeTelegram.${caller}: unknown method "${method}"`)
  return known
}

/** Thrown by `admit` for a `drop` fault: the server closes the connection without answering. */
export class DroppedConnection extends Error {}

type AnsweredFault = Exclude<TelegramFault, { readonly drop: true }>

export class FaultInjector {
  #faults = new Map<Method, Array<TelegramFault>>()
  #outages = new Map<Method, { readonly fault: TelegramFault; readonly until: number }>()
  #blockedChats = new Set<ChatId>()
  /** Groups upgraded to supergroups: old id -> new id. */
  #migrations = new Map<ChatId, number>()
  /** Rate-limit windows opened by 429 answers: "chat:<id>" or "global" -> Date.now() when they end. */
  #rateBlocks = new Map<string, number>()

  failNext(method: string, fault: TelegramFault, times: number): void {
    const known = knownMethod(method, "failNext")
    const queue = this.#faults.get(known) ?? []
    for (let i = 0; i < times; i++) queue.push(fault)
    this.#faults.set(known, queue)
  }

  failFor(method: string, fault: TelegramFault, durationMs: number): void {
    this.#outages.set(knownMethod(method, "failFor"), { fault, until: Date.now() + durationMs })
  }

  blockChat(chatId: ChatId): void {
    this.#blockedChats.add(chatKey(chatId))
  }

  unblockChat(chatId: ChatId): void {
    this.#blockedChats.delete(chatKey(chatId))
  }

  migrateChat(oldChatId: ChatId, newChatId: number): void {
    this.#migrations.set(chatKey(oldChatId), newChatId)
  }

  reset(): void {
    this.#faults.clear()
    this.#outages.clear()
    this.#blockedChats.clear()
    this.#migrations.clear()
    this.#rateBlocks.clear()
  }

  /** The violation when the call arrived inside a retry_after window of its chat (or of the bot). */
  violationBy(call: TelegramCall): RateViolation | undefined {
    const blockedUntil = this.#rateBlocks.get(rateKey(call.chatId))
    if (blockedUntil === undefined || call.at >= blockedUntil - RATE_SLACK_MS) return undefined
    return { method: call.method, chatId: call.chatId, at: call.at, blockedUntil, earlyByMs: blockedUntil - call.at }
  }

  /** Throws the error the call must fail with: a queued fault first, then an outage, then a migrated or blocked chat. */
  admit(method: Method, call: TelegramCall): void {
    const outage = this.#outages.get(method)
    const fault = this.#faults.get(method)?.shift() ?? (outage !== undefined && Date.now() < outage.until ? outage.fault : undefined)
    if (fault !== undefined) throw "drop" in fault ? new DroppedConnection() : this.#faultError(fault, call)
    if (call.chatId === undefined || !CHAT_METHODS.has(method)) return
    const migratedTo = this.#migrations.get(call.chatId)
    if (migratedTo !== undefined) {
      throw new TelegramError(400, "Bad Request: group chat was upgraded to a supergroup chat", {
        migrate_to_chat_id: migratedTo
      })
    }
    if (this.#blockedChats.has(call.chatId)) throw new TelegramError(403, "Forbidden: bot was blocked by the user")
  }

  #faultError(fault: AnsweredFault, call: TelegramCall): TelegramError {
    switch (fault.code) {
      case 429: {
        const key = rateKey(call.chatId)
        const until = Date.now() + fault.retryAfter * 1000
        this.#rateBlocks.set(key, Math.max(until, this.#rateBlocks.get(key) ?? 0))
        return new TelegramError(429, `Too Many Requests: retry after ${fault.retryAfter}`, { retry_after: fault.retryAfter })
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
}
