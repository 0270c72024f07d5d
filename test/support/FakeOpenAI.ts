/**
 * A fake OpenAI Chat Completions server for integration tests and the benchmark.
 *
 * It speaks real HTTP on 127.0.0.1 (ephemeral port) and is driven by the real `openai` SDK:
 * `new OpenAI({ apiKey, baseURL: fake.url + "/v1" })`. It serves `POST /v1/chat/completions`,
 * streaming (SSE chat.completion.chunk events, an optional usage chunk, `[DONE]`) or not,
 * with scripted replies, scripted timing, fault injection (429 / 5xx / hang) and a record of
 * every request, including whether the client aborted it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { ChangeNotifier, closeServer, delay, listenOnLoopback, waitForCondition } from "./LoopbackServer.ts"

// ---------------------------------------------------------------------------------------------
// Public types

export interface ChatMessageBody {
  readonly role: string
  /** A string, or an array of content parts (only `{ type: "text", text }` parts are read). */
  readonly content?: unknown
  readonly [key: string]: unknown
}

/** The request body of POST /v1/chat/completions, as received. */
export interface ChatCompletionBody {
  readonly model?: string
  readonly messages?: ReadonlyArray<ChatMessageBody>
  readonly stream?: boolean
  readonly stream_options?: { readonly include_usage?: boolean }
  readonly [key: string]: unknown
}

export interface ScriptedReplyOptions {
  readonly text: string
  /** Delay between two content chunks. Default 0. */
  readonly chunkDelayMs?: number
  /** Delay before the first content chunk (streaming) or before the answer (non-streaming). Default 0. */
  readonly firstTokenDelayMs?: number
  /** Characters (code points) per content chunk. Default 8. */
  readonly chunkSize?: number
}

export type ScriptedReply = string | ScriptedReplyOptions

export type ReplyScript = (body: ChatCompletionBody) => ScriptedReply | Promise<ScriptedReply>

export type OpenAIFault =
  | { readonly status: 429; readonly retryAfterSeconds?: number }
  | { readonly status: 500 | 503 }
  /** As if the key had been revoked: 401, quoting the key the client sent, as OpenAI does. */
  | { readonly status: 401 }
  | { readonly hang: true }

export interface RecordedRequest {
  readonly body: ChatCompletionBody
  /** `Date.now()` when the request body had been read. */
  readonly receivedAt: number
  /** The client closed the connection before the response was fully written. */
  aborted: boolean
  /** The response was fully written (whatever its status). */
  completed: boolean
  /** `Date.now()` when the response was fully written. */
  completedAt?: number
  /** HTTP status answered; absent while pending or for a hung request. */
  status?: number
}

export interface FakeOpenAIOptions {
  /** When set, requests must carry `Authorization: Bearer <apiKey>` (401 otherwise). */
  readonly apiKey?: string
}

export const DEFAULT_CHUNK_SIZE = 8

/** Deterministic token estimate: one token per 4 characters, rounded up. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4)

/**
 * The default script: `Echo: <content of the last user message>`, without the sender's label a
 * group's messages start with (`[Name (id 1)]: `), so answers read the same in every chat.
 */
export const echoReply: ReplyScript = (body) => {
  const lastUser = [...(body.messages ?? [])].reverse().find((m) => m.role === "user")
  return `Echo: ${lastUser === undefined ? "" : contentText(lastUser.content).replace(/^\[[^\]\n]*\]: /, "")}`
}

// ---------------------------------------------------------------------------------------------
// Server

export async function startFakeOpenAI(opts: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const fake = new FakeOpenAI(opts)
  await fake.listen()
  return fake
}

export class FakeOpenAI {
  /** Every chat completion request, in arrival order. */
  readonly requests: Array<RecordedRequest> = []
  /** GET /v1/models requests received (key checks), answered or refused. */
  modelListings = 0

  readonly #server: Server
  readonly #apiKey: string | undefined
  readonly #changes = new ChangeNotifier()
  #url = ""
  #closed = false
  #reply: ReplyScript = echoReply
  #faults: Array<OpenAIFault> = []
  #nextId = 1

  constructor(opts: FakeOpenAIOptions = {}) {
    this.#apiKey = opts.apiKey
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        // Only a bug in the fake (or in a reply script) lands here.
        sendError(res, 500, { message: `Fake server error: ${String(error)}`, type: "server_error", code: null })
      })
    })
  }

  async listen(): Promise<void> {
    this.#url = await listenOnLoopback(this.#server)
  }

  /** Server root, e.g. `http://127.0.0.1:40123`; the SDK's baseURL is `url + "/v1"`. */
  get url(): string {
    return this.#url
  }

  /** Stops the server; in-flight (e.g. hung) requests are cut off and end up `aborted`. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await closeServer(this.#server)
    this.#changes.notify()
  }

  // --- controls -------------------------------------------------------------------------------

  /** Scripts the replies; a plain string is sent with default timing and chunk size. */
  setReply(script: ReplyScript): void {
    this.#reply = script
  }

  /** The next `times` requests fail with `fault` (queued after earlier failNext calls). */
  failNext(fault: OpenAIFault, times = 1): void {
    for (let i = 0; i < times; i++) this.#faults.push(fault)
  }

  /** Forgets recorded requests and pending faults, and restores the echo reply. */
  reset(): void {
    this.requests.length = 0
    this.#faults = []
    this.#reply = echoReply
    this.#changes.notify()
  }

  /**
   * Resolves with the predicate's first truthy result. It is re-evaluated after every change of a
   * recorded request and at least every 50 ms; a predicate that throws counts as "not yet".
   */
  waitFor<T>(predicate: (fake: FakeOpenAI) => T | false | null | undefined, timeoutMs = 5_000): Promise<T> {
    return waitForCondition(() => predicate(this), {
      label: "FakeOpenAI.waitFor",
      timeoutMs,
      notifier: this.#changes,
      describeState: () => {
        const state = this.requests
          .map((r) => `#${r.status ?? "pending"}${r.aborted ? " aborted" : ""}${r.completed ? " completed" : ""}`)
          .join(", ")
        return `Requests: ${state || "none"}`
      }
    })
  }

  // --- HTTP -----------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://fake").pathname.replace(/\/+$/, "")
    if (req.method === "GET" && path === "/v1/models") {
      this.#listModels(req, res)
      return
    }
    if (req.method !== "POST" || path !== "/v1/chat/completions") {
      sendError(res, 404, { message: `Unknown request URL: ${req.method ?? "?"} ${path}`, type: "invalid_request_error", code: "unknown_url" })
      return
    }
    let body: ChatCompletionBody
    try {
      body = parseBody(await readBody(req))
    } catch (error) {
      sendError(res, 400, { message: String(error), type: "invalid_request_error", code: null })
      return
    }

    const record: RecordedRequest = { body, receivedAt: Date.now(), aborted: false, completed: false }
    this.requests.push(record)
    // 'close' before the end was written means the client went away.
    const disconnected = new AbortController()
    res.on("close", () => {
      if (res.writableFinished) {
        record.completed = true
        record.completedAt = Date.now()
      } else {
        record.aborted = true
        disconnected.abort()
      }
      this.#changes.notify()
    })
    this.#changes.notify()

    if (this.#apiKey !== undefined && req.headers.authorization !== `Bearer ${this.#apiKey}`) {
      refuseKey(req, res, record)
      return
    }
    const fault = this.#faults.shift()
    if (fault !== undefined) {
      if ("status" in fault && fault.status === 401) refuseKey(req, res, record)
      else this.#answerFault(fault, record, res)
      return
    }

    const reply = normalizeReply(await this.#reply(body))
    const id = `chatcmpl-fake${this.#nextId++}`
    const created = Math.floor(Date.now() / 1000)
    const model = body.model ?? "gpt-fake"
    const usage = {
      prompt_tokens: estimateTokens((body.messages ?? []).map((m) => contentText(m.content)).join("")),
      completion_tokens: estimateTokens(reply.text),
      total_tokens: 0
    }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens

    record.status = 200
    if (body.stream === true) {
      await streamReply(res, disconnected.signal, {
        reply,
        base: { id, object: "chat.completion.chunk", created, model, system_fingerprint: "fp_fake" },
        usage: body.stream_options?.include_usage === true ? usage : undefined
      })
    } else {
      await delay(reply.firstTokenDelayMs, disconnected.signal)
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: "fp_fake",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: reply.text, refusal: null },
            logprobs: null,
            finish_reason: "stop"
          }
        ],
        usage
      })
    }
  }

  /** GET /v1/models: what a key check asks; refused like a completion when the key is wrong. */
  #listModels(req: IncomingMessage, res: ServerResponse): void {
    this.modelListings++
    if (this.#apiKey !== undefined && req.headers.authorization !== `Bearer ${this.#apiKey}`) {
      sendError(res, 401, { message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key" })
      return
    }
    sendJson(res, 200, { object: "list", data: [{ id: "gpt-fake", object: "model", created: 1_700_000_000, owned_by: "fake" }] })
  }

  #answerFault(fault: Exclude<OpenAIFault, { readonly status: 401 }>, record: RecordedRequest, res: ServerResponse): void {
    if ("hang" in fault) return // keep the connection open until the client aborts (or close())
    record.status = fault.status
    switch (fault.status) {
      case 429: {
        const retryAfter = fault.retryAfterSeconds ?? 1
        sendError(
          res,
          429,
          { message: "Rate limit reached for requests (fake). Please try again later.", type: "requests", code: "rate_limit_exceeded" },
          { "retry-after": String(retryAfter) }
        )
        return
      }
      case 500:
        sendError(res, 500, { message: "The server had an error while processing your request. Sorry about that!", type: "server_error", code: null })
        return
      case 503:
        sendError(res, 503, { message: "The engine is currently overloaded, please try again later.", type: "server_error", code: null })
        return
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming

interface NormalizedReply {
  readonly text: string
  readonly chunkDelayMs: number
  readonly firstTokenDelayMs: number
  readonly chunkSize: number
}

function normalizeReply(reply: ScriptedReply): NormalizedReply {
  const options = typeof reply === "string" ? { text: reply } : reply
  return {
    text: options.text,
    chunkDelayMs: options.chunkDelayMs ?? 0,
    firstTokenDelayMs: options.firstTokenDelayMs ?? 0,
    chunkSize: Math.max(1, options.chunkSize ?? DEFAULT_CHUNK_SIZE)
  }
}

/** Splits on code points so an emoji's surrogate pair is never cut in half. */
function splitIntoChunks(text: string, size: number): Array<string> {
  const chars = Array.from(text)
  const chunks: Array<string> = []
  for (let i = 0; i < chars.length; i += size) chunks.push(chars.slice(i, i + size).join(""))
  return chunks
}

interface StreamPlan {
  readonly reply: NormalizedReply
  readonly base: Readonly<Record<string, unknown>>
  readonly usage: Readonly<Record<string, number>> | undefined
}

/**
 * Writes the SSE stream the way OpenAI does: a role chunk, content chunks, a chunk with
 * finish_reason "stop", the usage chunk (`choices: []`) when asked for, then `[DONE]`.
 * Stops silently if the client disconnects.
 */
async function streamReply(res: ServerResponse, signal: AbortSignal, plan: StreamPlan): Promise<void> {
  const { reply, base, usage } = plan
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive"
  })
  res.flushHeaders()
  const withUsage = usage === undefined ? {} : { usage: null }
  const event = (data: unknown) => {
    if (!signal.aborted && !res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`)
  }
  const chunk = (delta: Record<string, unknown>, finishReason: string | null) =>
    event({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }], ...withUsage })

  await delay(reply.firstTokenDelayMs, signal)
  chunk({ role: "assistant", content: "", refusal: null }, null)
  const parts = splitIntoChunks(reply.text, reply.chunkSize)
  for (const [index, part] of parts.entries()) {
    if (signal.aborted) return
    if (index > 0) await delay(reply.chunkDelayMs, signal)
    chunk({ content: part }, null)
  }
  if (signal.aborted) return
  chunk({}, "stop")
  if (usage !== undefined) event({ ...base, choices: [], usage })
  if (!signal.aborted && !res.destroyed) res.end("data: [DONE]\n\n")
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Text of a message's content: a string, or the concatenated text parts. */
function contentText(content: unknown): string {
  if (typeof content === "string") return content
  if (!Array.isArray(content)) return ""
  return content
    .map((part: unknown) =>
      typeof part === "object" && part !== null && "text" in part && typeof part.text === "string" ? part.text : ""
    )
    .join("")
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Array<Buffer> = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
}

function parseBody(raw: string): ChatCompletionBody {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    throw new Error("We could not parse the JSON body of your request.")
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("The request body must be a JSON object.")
  }
  return parsed as ChatCompletionBody
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.writableEnded) return
  const json = JSON.stringify(body)
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(json) })
  res.end(json)
}

function sendError(
  res: ServerResponse,
  status: number,
  error: { readonly message: string; readonly type: string; readonly code: string | null },
  headers: Record<string, string> = {}
): void {
  sendJson(res, status, { error: { ...error, param: null } }, headers)
}

/** 401 for a wrong key: like OpenAI, the message quotes the key that was sent, its middle masked. */
function refuseKey(req: IncomingMessage, res: ServerResponse, record: RecordedRequest): void {
  record.status = 401
  const given = (req.headers.authorization ?? "").replace(/^Bearer /, "")
  const masked = `${given.slice(0, 8)}${"*".repeat(Math.max(0, given.length - 12))}${given.slice(-4)}`
  sendError(res, 401, {
    message: `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com/account/api-keys.`,
    type: "invalid_request_error",
    code: "invalid_api_key"
  })
}
