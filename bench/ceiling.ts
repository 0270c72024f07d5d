/**
 * Delivery at Telegram's ceiling (issue 10): many chats at once against one bot's send budget.
 * One command: `node bench/ceiling.ts` (`npm run bench:ceiling`), about 4 minutes.
 *
 * Every scenario runs the real entry points as separate processes, started with the command
 * lines of package.json's scripts (`start:api`, `start:worker`, Node flags included), on a new
 * database of the real Postgres and Redis DB 5 (flushed before and after), in webhook mode,
 * against the fake OpenAI served by this process and the fake Telegram served by a thread of its
 * own (bench/telegramThread.ts: its timestamps do not wait for this busy loop). Before measuring, each
 * stack answers a few warm-up chats (instant LLM), then the fakes' records are cleared.
 *
 * - burst300: one api + one worker, default settings. 300 private chats each post one message
 *   at the same moment, delivered as Telegram does: over at most 40 webhook requests at once (its
 *   max_connections; --connections=300 fires all of them at once). LLM: first token after 0.5 s,
 *   then 3 s of streaming (31 chunks, 100 ms apart).
 * - burst300x2: the same with two worker processes on the same Postgres and Redis.
 * - concurrent1000: one api + one worker with WORKER_CONCURRENCY=1000 and LLM_CONCURRENCY=1000;
 *   1,000 chats at once; LLM: first token after 0.5 s, then 40 s of streaming (101 chunks,
 *   400 ms apart).
 * - quiet: one api + one worker, default settings; 10 chats one after the other (each answered
 *   before the next posts); LLM: first token after 0.5 s, then 1 s of streaming.
 *
 * Figures come from the fake Telegram's record of calls (arrival times, `Date.now()` on its
 * thread), the fake OpenAI's record of requests, /proc (each program's RSS sampled every 100 ms,
 * and the kernel's high-water mark VmHWM), Redis (BullMQ's job id counter: wake-ups enqueued) and
 * Postgres (the messages' status and turn attempts). A "write" is a Bot API call to a chat
 * (send*, edit*, delete*, ...: sendMessage, sendMessageDraft, editMessageText, sendChatAction,
 * deleteMessage); the busiest second is the most calls in any half-open window [t, t + 1 s).
 * Per chat, times run from the moment the burst began (when its user wrote): first sign of life
 * (any write, typing included), first text (a draft, message or edit), final answer (a
 * sendMessage or editMessageText answered 200 whose text does not end with the streaming cursor
 * " ▍"). The
 * worker program serves no HTTP, so its Prometheus metrics (queue_wait_seconds) cannot be read.
 * The fake OpenAI does not record when it wrote the first token: quiet takes the request's
 * arrival + the scripted first-token delay.
 *
 * Options: --only=burst300|burst300x2|concurrent1000|quiet (one scenario), --json (the figures
 * as JSON after the tables), --env=KEY=VALUE (repeatable: extra environment for every program,
 * applied after the scenario's own, e.g. --env=WORKER_CONCURRENCY=100), --connections=N (webhook
 * requests in flight at once, 40 by default: Telegram's max_connections), --timeline=FILE (each
 * scenario's calls, LLM requests and posts as JSON in FILE.<scenario>.json).
 *
 * Needs Postgres (127.0.0.1:5432, user postgres, trust) and Redis (127.0.0.1:6379). Every
 * server listens on 127.0.0.1, every wait is bounded, and everything started is stopped,
 * databases dropped and Redis DB 5 flushed, on success, failure or Ctrl-C. Logs of the programs
 * go to a temporary directory named on stderr. Tables (plain, then markdown for BENCHMARKS.md)
 * go to stdout.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import type { Redis } from "ioredis"
import pg from "pg"
import { type FakeOpenAI, startFakeOpenAI } from "../test/support/FakeOpenAI.ts"
import type { TelegramCall } from "../test/support/telegram/FakeTelegram.ts"
import {
  benchBotToken,
  benchOpenaiKey,
  botEnv,
  cpuDelta,
  type CpuGroups,
  cpuSnapshot,
  freePort,
  machineBusySeconds,
  migrateDatabase,
  percentile,
  pgHost,
  pgPort,
  postWebhook,
  type Program,
  sharedStorage,
  sleep,
  startProgram,
  textUpdateBody
} from "./lib.ts"
import { startTelegramThread, type ThreadedTelegram } from "./telegramThread.ts"

// ---------------------------------------------------------------------------------------------
// Options

const scenarioNames = ["burst300", "burst300x2", "concurrent1000", "quiet"] as const
type ScenarioName = (typeof scenarioNames)[number]

const usage = `usage: node bench/ceiling.ts [--only=${scenarioNames.join("|")}] [--json] [--env=KEY=VALUE ...] [--connections=N] [--timeline=FILE]`
const args = process.argv.slice(2)
/** The options that take a value (--name=value); --env is read below, --json takes none. */
const valueOptions = ["only", "connections", "timeline"] as const
const option = (name: (typeof valueOptions)[number]) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const only = option("only")
const asJson = args.includes("--json")
/**
 * Webhook requests in flight at once. Telegram delivers a bot's updates over at most
 * max_connections connections (setWebhook; 40 unless set, and the bot does not set it).
 */
const connections = Number(option("connections") ?? 40)
if (!Number.isInteger(connections) || connections < 1) throw new Error(`--connections needs a positive integer\n${usage}`)
const timelineFile = option("timeline")
const extraEnv: Record<string, string> = {}
for (const arg of args) {
  if (valueOptions.some((name) => arg.startsWith(`--${name}=`)) || arg === "--json") continue
  if (arg.startsWith("--env=")) {
    const pair = arg.slice("--env=".length)
    const eq = pair.indexOf("=")
    if (eq <= 0) throw new Error(`--env needs KEY=VALUE, got "${pair}"\n${usage}`)
    extraEnv[pair.slice(0, eq)] = pair.slice(eq + 1)
  } else throw new Error(`unknown option ${arg}\n${usage}`)
}
if (only !== undefined && !(scenarioNames as ReadonlyArray<string>).includes(only)) throw new Error(`unknown scenario ${only}\n${usage}`)

const logDir = mkdtempSync(join(tmpdir(), "bench-ceiling-"))
const redisDb = 5
/** The end of a preview while the answer still streams (src/services/chat/ReplyWriter.ts). */
const cursor = " ▍"
/** BullMQ's job counter of the chat wake-up queue (src/layers/platform/JobQueueBullMq.ts). */
const wakeUpCounterKey = "bull:chat-wakeups:id"
/** The whole run stops (cleaning up) past this. */
const runLimitMs = 10 * 60_000

const log = (line: string) => process.stderr.write(`[ceiling] ${new Date().toISOString().slice(11, 23)} ${line}\n`)

// ---------------------------------------------------------------------------------------------
// Clean-up: a stack of undo steps; a scenario undoes its own steps when it ends, however it ends

const cleanups: Array<{ readonly what: string; readonly run: () => Promise<void> }> = []
const onCleanup = (what: string, run: () => Promise<void>) => void cleanups.push({ what, run })
const cleanUpTo = async (depth: number) => {
  while (cleanups.length > depth) {
    const step = cleanups.pop()!
    await step.run().catch((error: unknown) => log(`clean-up (${step.what}) failed: ${String(error)}`))
  }
}

/** Polls `condition` every `everyMs` until true or `timeoutMs` passed; returns whether it held. */
const until = async (condition: () => boolean, timeoutMs: number, everyMs = 200): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() >= deadline) return false
    await sleep(everyMs)
  }
  return true
}

// ---------------------------------------------------------------------------------------------
// The stack: fakes, storage, one api and N workers, warmed up

interface Stack {
  readonly telegram: ThreadedTelegram
  readonly openai: FakeOpenAI
  readonly api: Program
  readonly workers: ReadonlyArray<Program>
  readonly redis: Redis
  readonly database: string
  readonly sql: <T>(text: string, values?: ReadonlyArray<unknown>) => Promise<Array<T>>
}

const startStack = async (name: string, options: { readonly workers: number; readonly env?: Readonly<Record<string, string>> }): Promise<Stack> => {
  const telegram = await startTelegramThread(benchBotToken)
  const openai = await startFakeOpenAI({ apiKey: benchOpenaiKey })
  onCleanup("fakes", async () => void (await Promise.all([telegram.close(), openai.close()])))
  const database = `bench_ceiling_${name.toLowerCase()}_${process.pid}`
  const storage = await sharedStorage(database, redisDb)
  onCleanup(`database ${database}, Redis DB ${redisDb}`, storage.release)
  const client = new pg.Client({ host: pgHost, port: pgPort, user: "postgres", database })
  await client.connect()
  onCleanup("Postgres client", () => client.end())
  await migrateDatabase(storage.env, logDir)

  const port = await freePort()
  const env = { ...botEnv(port, { telegramUrl: telegram.url, openaiUrl: openai.url }), ...storage.env, ...options.env, ...extraEnv }
  const api = await startProgram(`${name}-api`, "start:api", env, { logDir, port, sampleEveryMs: 100 })
  onCleanup(`${name}-api`, api.stop)
  const workers: Array<Program> = []
  for (let i = 1; i <= options.workers; i++) {
    const worker = await startProgram(`${name}-worker${i}`, "start:worker", { ...env, PORT: String(await freePort()) }, { logDir, sampleEveryMs: 100 })
    onCleanup(`${name}-worker${i}`, worker.stop)
    workers.push(worker)
  }
  const alive = () => {
    for (const p of [api, ...workers]) if (p.child.exitCode !== null) throw new Error(`${p.name} exited with code ${p.child.exitCode} (log: ${p.logFile})`)
    return true
  }
  // A worker checks the LLM key (GET /v1/models) just before it starts taking wake-ups.
  if (!(await until(() => alive() && openai.modelListings >= options.workers, 120_000))) {
    throw new Error(`${name}: the workers did not check the LLM key within 120 s (logs in ${logDir})`)
  }

  // Warm-up: a few chats answered at once (instant echo replies), then the records are cleared.
  const warmUp = Array.from({ length: 3 * options.workers }, (_, i) => 1_000_001 + i)
  const warmPosts = await postAll(api.url, warmUp, { users: 1_000, userBase: 700_000_000 })
  const warmChats = new Set(warmPosts.map((p) => p.chatId))
  const warmed = await until(() => alive() && finalChats(telegram.calls, warmChats).size >= warmChats.size, 60_000)
  if (!warmed) throw new Error(`${name}: the warm-up chats were not answered within 60 s (logs in ${logDir})`)
  await sleep(1_000)
  await telegram.reset()
  openai.reset()
  for (const p of [api, ...workers]) p.mark()
  log(`${name}: ${options.workers} worker${options.workers > 1 ? "s" : ""} and the api started, ${warmUp.length} warm-up chats answered`)
  const sql = async <T>(text: string, values: ReadonlyArray<unknown> = []) => (await client.query(text, [...values])).rows as Array<T>
  return { telegram, openai, api, workers, redis: storage.redis, database, sql }
}

// ---------------------------------------------------------------------------------------------
// Posting

interface Post {
  readonly n: number
  readonly chatId: number
  /** Date.now() when the burst began: every post of a burst was written then. */
  readonly at: number
  readonly status: number
  readonly doneAt: number
}

/**
 * Posts one private-chat message per `n`, all written at once and delivered as Telegram does:
 * over `connections` requests in flight (--connections), each taking the next update as it ends.
 * The bodies are built first.
 */
const postAll = async (url: string, ns: ReadonlyArray<number>, users: { readonly users: number; readonly userBase: number }): Promise<Array<Post>> => {
  const bodies = ns.map((n) => {
    const body = textUpdateBody(n, users)
    return { n, body, chatId: (JSON.parse(body) as { message: { chat: { id: number } } }).message.chat.id }
  })
  if (new Set(bodies.map((b) => b.chatId)).size !== bodies.length) throw new Error("two posts landed in the same chat")
  // Everyone wrote at `at`: time spent queued for a connection counts.
  const at = Date.now()
  const posts: Array<Post> = []
  let next = 0
  await Promise.all(Array.from({ length: Math.min(connections, bodies.length) }, async () => {
    while (next < bodies.length) {
      const { n, body, chatId } = bodies[next++]!
      const status = await postWebhook(url, body, 60_000)
      posts.push({ n, chatId, at, status, doneAt: Date.now() })
    }
  }))
  return posts
}

// ---------------------------------------------------------------------------------------------
// Reading the fake Telegram's record

const textOf = (call: TelegramCall) => (typeof call.params["text"] === "string" ? call.params["text"] : "")
/** A Bot API call that writes to a chat (sendMessage, sendMessageDraft, editMessageText, sendChatAction, deleteMessage, ...). */
const isWrite = (call: TelegramCall) => call.chatId !== undefined && /^(send|edit|delete|copy|forward|pin|unpin|stop)/.test(call.method)
const isText = (call: TelegramCall) => call.method === "sendMessageDraft" || call.method === "sendMessage" || call.method === "editMessageText"
const isPaced = isText
const isFinal = (call: TelegramCall) =>
  (call.method === "sendMessage" || call.method === "editMessageText") && call.status === 200 && !textOf(call).endsWith(cursor)

/**
 * --timeline: every write to a chat, LLM request and post of a scenario, in ms from its first
 * post, as JSON (to see where the budget went, second by second).
 */
const writeTimeline = (
  file: string,
  firstPost: number,
  calls: ReadonlyArray<TelegramCall>,
  requests: FakeOpenAI["requests"],
  posts: ReadonlyArray<Post>
) =>
  writeFileSync(file, JSON.stringify({
    calls: calls.map((c) => ({ method: c.method, chatId: c.chatId, at: c.at - firstPost, status: c.status, final: isFinal(c) })),
    llmRequests: requests.map((r) => ({ receivedAt: r.receivedAt - firstPost, completedAt: (r.completedAt ?? Number.NaN) - firstPost })),
    posts: posts.map((p) => ({ chatId: p.chatId, doneAt: p.doneAt - firstPost }))
  }))

/** The `#n` marker of the update an LLM request answers (textUpdateBody puts it in the text). */
const markerOf = (body: { readonly messages?: ReadonlyArray<{ readonly role: string; readonly content?: unknown }> }) => {
  const user = [...(body.messages ?? [])].reverse().find((m) => m.role === "user")
  const match = /#(\d+)\b/.exec(typeof user?.content === "string" ? user.content : JSON.stringify(user?.content ?? ""))
  return match ? Number(match[1]) : undefined
}

/** Final answers per chat, among `chats`. */
const finalChats = (calls: ReadonlyArray<TelegramCall>, chats: ReadonlySet<number>) => {
  const counts = new Map<number, number>()
  for (const call of calls) {
    if (typeof call.chatId === "number" && chats.has(call.chatId) && isFinal(call)) counts.set(call.chatId, (counts.get(call.chatId) ?? 0) + 1)
  }
  return counts
}

/** The most events in any half-open window [t, t + windowMs). */
const busiestWindow = (times: ReadonlyArray<number>, windowMs = 1_000): number => {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  let end = 0
  for (let start = 0; start < sorted.length; start++) {
    while (end < sorted.length && sorted[end]! < sorted[start]! + windowMs) end++
    best = Math.max(best, end - start)
  }
  return best
}

const spread = (values: ReadonlyArray<number>) => ({ p50: percentile(values, 50), p90: percentile(values, 90), max: values.length === 0 ? Number.NaN : Math.max(...values) })

// ---------------------------------------------------------------------------------------------
// Figures

interface Row {
  readonly scenario: string
  readonly figure: string
  readonly value: string
  readonly target: string
}
const rows: Array<Row> = []
const figures: Record<string, Record<string, unknown>> = {}
const seconds = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "n/a")
const millis = (ms: number) => (Number.isFinite(ms) ? `${Math.round(ms)} ms` : "n/a")
const mb = (bytes: number) => (Number.isFinite(bytes) && bytes > 0 ? `${Math.round(bytes / 1024 / 1024)} MB` : "n/a")
const row = (scenario: string, figure: string, value: string | number, target: string | undefined = "") => {
  rows.push({ scenario, figure, value: String(value), target })
  log(`${scenario}: ${figure}: ${value}${target === "" ? "" : ` (target ${target})`}`)
}

/** Wake-ups enqueued so far (BullMQ's job id counter: one per job added, retries not included). */
const wakeUpsSoFar = async (redis: Redis) => Number((await redis.get(wakeUpCounterKey)) ?? 0)

/** The bench process's own event-loop delay during a scenario: the fakes' timestamps are this late at worst. */
const loopDelay = () => {
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  return () => {
    histogram.disable()
    return { p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 }
  }
}

interface BurstOutcome {
  readonly posts: ReadonlyArray<Post>
  readonly chats: ReadonlySet<number>
  /** CPU seconds from the posts to the end of the wait, by process group, and the wall time (s). */
  readonly cpu: { readonly groups: CpuGroups; readonly busy: number; readonly seconds: number }
  /** This process's event-loop delay while it posted, and while it waited for the answers. */
  readonly loopDelay: { readonly posting: { p99: number; max: number }; readonly waiting: { p99: number; max: number } }
  /** The fake Telegram thread's event-loop delay over the burst, max (ms). */
  readonly telegramLoopDelayMaxMs: number
}

/** Posts `count` chats at once and waits (bounded) until each has a final answer, then 2 s more for stray calls. */
const burst = async (name: string, stack: Stack, count: number, timeoutMs: number): Promise<BurstOutcome> => {
  const ns = Array.from({ length: count }, (_, i) => i + 1)
  log(`${name}: posting ${count} chats at once`)
  const processes = () => ({ api: stack.api.pid, ...Object.fromEntries(stack.workers.map((w, i) => [`worker${i + 1}`, w.pid])), bench: process.pid })
  const cpuBefore = { groups: cpuSnapshot(processes(), stack.database), busy: machineBusySeconds(), at: Date.now() }
  const stopPosting = loopDelay()
  const posts = await postAll(stack.api.url, ns, { users: count, userBase: 800_000_000 })
  const posting = stopPosting()
  const stopWaiting = loopDelay()
  const chats = new Set(posts.map((p) => p.chatId))
  log(`${name}: ${posts.filter((p) => p.status === 200).length} accepted in ${seconds(Math.max(...posts.map((p) => p.doneAt)) - Math.min(...posts.map((p) => p.at)))}; waiting for the answers (at most ${seconds(timeoutMs)})`)
  let lastReport = Date.now()
  const done = await until(() => {
    const answered = finalChats(stack.telegram.calls, chats).size
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now()
      log(`${name}: ${answered}/${count} answered, ${stack.telegram.calls.length} Telegram calls so far`)
    }
    for (const w of stack.workers) if (w.child.exitCode !== null) return true
    return answered >= count
  }, timeoutMs, 250)
  if (!done) log(`${name}: not every chat was answered within ${seconds(timeoutMs)}`)
  const cpu = {
    groups: cpuDelta(cpuBefore.groups, cpuSnapshot(processes(), stack.database)),
    busy: machineBusySeconds() - cpuBefore.busy,
    seconds: (Date.now() - cpuBefore.at) / 1000
  }
  await sleep(2_000)
  return { posts, chats, cpu, loopDelay: { posting, waiting: stopWaiting() }, telegramLoopDelayMaxMs: await stack.telegram.loopDelayMaxMs() }
}

/** The figures every burst reports, from the fake Telegram's calls, Redis and Postgres. */
const burstFigures = async (
  name: string,
  stack: Stack,
  outcome: BurstOutcome,
  wakeUpsBefore: number,
  targets: { readonly firstText?: string; readonly lastFinal?: string; readonly wakeUps?: string }
) => {
  const { posts, chats } = outcome
  const calls = [...stack.telegram.calls]
  const firstPost = Math.min(...posts.map((p) => p.at))
  const accepted = posts.filter((p) => p.status === 200).length
  const finals = finalChats(calls, chats)
  const once = [...chats].filter((c) => finals.get(c) === 1).length
  const never = [...chats].filter((c) => (finals.get(c) ?? 0) === 0).length
  const twice = [...chats].filter((c) => (finals.get(c) ?? 0) > 1).length

  const byChat = new Map<number, Array<TelegramCall>>()
  for (const call of calls) {
    if (typeof call.chatId === "number" && chats.has(call.chatId) && isWrite(call)) {
      const list = byChat.get(call.chatId) ?? []
      list.push(call)
      byChat.set(call.chatId, list)
    }
  }
  const life: Array<number> = []
  const text: Array<number> = []
  const final: Array<number> = []
  let lastFinal = Number.NEGATIVE_INFINITY
  for (const post of posts) {
    const list = byChat.get(post.chatId) ?? []
    const first = list[0]
    if (first !== undefined) life.push(first.at - post.at)
    const firstText = list.find(isText)
    if (firstText !== undefined) text.push(firstText.at - post.at)
    const firstFinal = list.find(isFinal)
    if (firstFinal !== undefined) {
      final.push(firstFinal.at - post.at)
      lastFinal = Math.max(lastFinal, firstFinal.at)
    }
  }
  const writes = calls.filter(isWrite)
  const count = (method: string) => calls.filter((c) => c.method === method).length
  const failed = calls.filter((c) => c.status !== 200).length

  const ids = posts.map((p) => p.n)
  const statuses = await stack.sql<{ status: string; messages: string; attempts: string }>(
    "select status, count(*) as messages, coalesce(sum(attempts), 0) as attempts from messages where update_id between $1 and $2 group by status order by status",
    [Math.min(...ids), Math.max(...ids)]
  )
  const messages = statuses.reduce((sum, s) => sum + Number(s.messages), 0)
  const attempts = statuses.reduce((sum, s) => sum + Number(s.attempts), 0)
  const wakeUps = (await wakeUpsSoFar(stack.redis)) - wakeUpsBefore

  // Generation apart from delivery: when each chat's LLM request came, when the last stream ended.
  const postOf = new Map(posts.map((p) => [p.n, p]))
  const llmStart: Array<number> = []
  let lastStreamEnd = Number.NEGATIVE_INFINITY
  for (const request of stack.openai.requests) {
    const post = postOf.get(markerOf(request.body) ?? -1)
    if (post === undefined) continue
    llmStart.push(request.receivedAt - post.at)
    if (request.completedAt !== undefined) lastStreamEnd = Math.max(lastStreamEnd, request.completedAt)
  }

  if (timelineFile !== undefined) writeTimeline(`${timelineFile}.${name}.json`, firstPost, calls, stack.openai.requests, posts)
  const lifeS = spread(life)
  const textS = spread(text)
  const finalS = spread(final)
  const result = {
    chats: chats.size,
    accepted,
    ingestMs: Math.max(...posts.map((p) => p.doneAt)) - firstPost,
    answeredOnce: once,
    unanswered: never,
    answeredTwiceOrMore: twice,
    busiestSecondWrites: busiestWindow(writes.map((c) => c.at)),
    busiestSecondAll: busiestWindow(calls.map((c) => c.at)),
    busiestSecondPaced: busiestWindow(calls.filter(isPaced).map((c) => c.at)),
    busiestSecondTyping: busiestWindow(calls.filter((c) => c.method === "sendChatAction").map((c) => c.at)),
    firstSignOfLifeMs: lifeS,
    firstTextMs: textS,
    finalMs: finalS,
    lastFinalAfterFirstPostMs: lastFinal - firstPost,
    chatsWithoutSignOfLife: chats.size - life.length,
    sendChatAction: count("sendChatAction"),
    sendMessageDraft: count("sendMessageDraft"),
    editMessageText: count("editMessageText"),
    sendMessage: count("sendMessage"),
    deleteMessage: count("deleteMessage"),
    telegramCalls: calls.length,
    failedTelegramCalls: failed,
    llmRequests: stack.openai.requests.length,
    llmRequestMs: spread(llmStart),
    lastLlmStreamEndAfterFirstPostMs: lastStreamEnd - firstPost,
    wakeUps,
    wakeUpsPerMessage: wakeUps / Math.max(1, accepted),
    messagesByStatus: Object.fromEntries(statuses.map((s) => [s.status, Number(s.messages)])),
    turnAttemptsPerMessage: attempts / Math.max(1, messages),
    workerRssPeak: stack.workers.map((w) => w.peak()),
    cpuSeconds: { ...outcome.cpu.groups, machine: outcome.cpu.busy, wall: outcome.cpu.seconds },
    workersExited: stack.workers.filter((w) => w.child.exitCode !== null).map((w) => `${w.name}: ${w.child.exitCode}`)
  }
  const range = (s: { p50: number; p90: number; max: number }) => `${seconds(s.p50)} / ${seconds(s.p90)} / ${seconds(s.max)}`
  row(name, "chats answered exactly once (accepted; none; twice or more)", `${once} of ${chats.size} (${accepted}; ${never}; ${twice})`, `all ${chats.size}`)
  row(name, "busiest second, writes to chats (all processes)", result.busiestSecondWrites, "<= 30")
  row(name, "busiest second, all Bot API calls", result.busiestSecondAll)
  row(name, "busiest second, sendMessage + drafts + edits", result.busiestSecondPaced)
  row(name, "busiest second, sendChatAction", result.busiestSecondTyping)
  row(name, "LLM request p50 / p90 / max", range(result.llmRequestMs))
  row(name, "last LLM stream ended after the first post", seconds(result.lastLlmStreamEndAfterFirstPostMs))
  row(name, "first sign of life (typing or text) p50 / p90 / max", range(lifeS))
  row(name, "first text (draft or message) p50 / p90 / max", range(textS), targets.firstText)
  row(name, "final answer p50 / p90 / max", range(finalS))
  row(name, "last final answer after the first post", seconds(result.lastFinalAfterFirstPostMs), targets.lastFinal)
  row(name, "sendChatAction calls", result.sendChatAction)
  row(name, "drafts (sendMessageDraft) / edits (editMessageText) / sendMessage", `${result.sendMessageDraft} / ${result.editMessageText} / ${result.sendMessage}`)
  row(name, "Telegram calls, all (failed)", `${calls.length} (${failed})`)
  row(name, "wake-ups enqueued per message (BullMQ job ids)", `${result.wakeUpsPerMessage.toFixed(2)} (${wakeUps} for ${accepted})`, targets.wakeUps)
  row(name, "turns started per message (messages.attempts)", result.turnAttemptsPerMessage.toFixed(2))
  row(name, `worker RSS peak (VmHWM)${stack.workers.length > 1 ? ", each" : ""}`, stack.workers.map((w) => mb(w.peak())).join(", "))
  if (result.workersExited.length > 0) row(name, "worker processes that exited during the run", result.workersExited.join(", "))
  const cpu = outcome.cpu
  const cpuOf = (group: string) => (cpu.groups[group] ?? 0).toFixed(1)
  const others = Math.max(0, cpu.busy - Object.values(cpu.groups).reduce((a, b) => a + b, 0))
  row(
    name,
    `CPU seconds over the ${cpu.seconds.toFixed(0)} s burst (${cpus().length} cores): ${stack.workers.map((_, i) => `worker${i + 1}`).join(" + ")} / api / Postgres / Redis / this process (the fakes) / other processes (noise)`,
    `${stack.workers.map((_, i) => cpuOf(`worker${i + 1}`)).join(" + ")} / ${cpuOf("api")} / ${cpuOf("postgres")} / ${cpuOf("redis")} / ${cpuOf("bench")} / ${others.toFixed(1)}`
  )
  const { posting, waiting } = outcome.loopDelay
  row(name, "this process's event-loop delay max, posting / waiting (the fake LLM's timestamps are late by up to this)", `${millis(posting.max)} / ${millis(waiting.max)}`)
  row(name, "the fake Telegram thread's event-loop delay max (its calls' timestamps are late by up to this)", millis(outcome.telegramLoopDelayMaxMs))
  return result
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** Text of `chunks` chunks of the fake's 8 characters. */
const replyText = (chunks: number) => "A reply streamed to many chats at once, word by word. ".repeat(Math.ceil((chunks * 8) / 50)).slice(0, chunks * 8)

const burstScenario = (name: ScenarioName, workers: number) => async () => {
  const stack = await startStack(name, { workers })
  const wakeUpsBefore = await wakeUpsSoFar(stack.redis)
  // First token after 0.5 s, then 30 more chunks 100 ms apart: 3 s of streaming.
  stack.openai.setReply(() => ({ text: replyText(31), firstTokenDelayMs: 500, chunkDelayMs: 100 }))
  const outcome = await burst(name, stack, 300, 150_000)
  const result = await burstFigures(name, stack, outcome, wakeUpsBefore, { firstText: "p50 <= 6 s", lastFinal: "<= 15 s" })
  figures[name] = { ...result, benchLoopDelayMs: outcome.loopDelay }
}

const concurrent1000 = async () => {
  const name = "concurrent1000"
  const stack = await startStack(name, { workers: 1, env: { WORKER_CONCURRENCY: "1000", LLM_CONCURRENCY: "1000" } })
  const wakeUpsBefore = await wakeUpsSoFar(stack.redis)
  // First token after 0.5 s, then 100 more chunks 400 ms apart: 40 s of streaming.
  stack.openai.setReply(() => ({ text: replyText(101), firstTokenDelayMs: 500, chunkDelayMs: 400 }))
  const worker = stack.workers[0]!
  const outcome = await burst(name, stack, 1_000, 200_000)
  const result = await burstFigures(name, stack, outcome, wakeUpsBefore, { wakeUps: "<= 1.05" })
  const samples = worker.samples()
  const firstPost = Math.min(...outcome.posts.map((p) => p.at))
  const streamsEnded = firstPost + result.lastLlmStreamEndAfterFirstPostMs
  const atStreamEnd = samples.reduce<{ at: number; rss: number } | undefined>(
    (best, s) => (best === undefined || Math.abs(s.at - streamsEnded) < Math.abs(best.at - streamsEnded) ? s : best),
    undefined
  )
  const sampledMax = Math.max(...samples.map((s) => s.rss))
  const lastFinal = firstPost + result.lastFinalAfterFirstPostMs
  const atLastFinal = samples.filter((s) => s.at <= lastFinal).at(-1)
  row(name, "worker RSS, most sampled during the run (every 100 ms)", mb(sampledMax), "<= 512 MB")
  row(name, "worker RSS when the last LLM stream ended", mb(atStreamEnd?.rss ?? Number.NaN))
  row(name, "worker RSS at the last final answer", mb(atLastFinal?.rss ?? Number.NaN))
  figures[name] = {
    ...result,
    workerRssSampledMax: sampledMax,
    workerRssAtStreamEnd: atStreamEnd?.rss,
    workerRssAtLastFinal: atLastFinal?.rss,
    benchLoopDelayMs: outcome.loopDelay
  }
}

const quiet = async () => {
  const name = "quiet"
  const stack = await startStack(name, { workers: 1 })
  const firstTokenDelayMs = 500
  stack.openai.setReply(() => ({ text: replyText(11), firstTokenDelayMs, chunkDelayMs: 100 }))
  const posts: Array<Post> = []
  for (let n = 1; n <= 10; n++) {
    const [post] = await postAll(stack.api.url, [n], { users: 10, userBase: 800_000_000 })
    if (post === undefined || post.status !== 200) throw new Error(`quiet: message ${n} not accepted (${post?.status})`)
    posts.push(post)
    const answered = await until(() => (finalChats(stack.telegram.calls, new Set([post.chatId])).get(post.chatId) ?? 0) >= 1, 20_000, 20)
    if (!answered) throw new Error(`quiet: chat ${post.chatId} not answered within 20 s`)
    await sleep(300)
  }
  const tokenToDraft: Array<number> = []
  const postToDraft: Array<number> = []
  const postToLlm: Array<number> = []
  for (const post of posts) {
    const request = stack.openai.requests.find((r) => markerOf(r.body) === post.n)
    const draft = stack.telegram.calls.find((c) => c.chatId === post.chatId && c.method === "sendMessageDraft")
    if (request === undefined || draft === undefined) continue
    postToLlm.push(request.receivedAt - post.at)
    tokenToDraft.push(draft.at - (request.receivedAt + firstTokenDelayMs))
    postToDraft.push(draft.at - post.at)
  }
  const ms = (values: ReadonlyArray<number>) => `${millis(percentile(values, 50))} / ${millis(Math.max(...values))}`
  row(name, `first token -> first draft p50 / max (${tokenToDraft.length} chats; token time = LLM request + ${firstTokenDelayMs} ms)`, ms(tokenToDraft), "<= 150 ms")
  row(name, "post -> LLM request p50 / max", ms(postToLlm))
  row(name, "post -> first draft p50 / max", ms(postToDraft))
  figures[name] = {
    chats: posts.length,
    measured: tokenToDraft.length,
    firstTokenToFirstDraftMs: { p50: percentile(tokenToDraft, 50), max: Math.max(...tokenToDraft), all: tokenToDraft },
    postToLlmRequestMs: { p50: percentile(postToLlm, 50), max: Math.max(...postToLlm) },
    postToFirstDraftMs: { p50: percentile(postToDraft, 50), max: Math.max(...postToDraft) }
  }
}

const scenarios: Record<ScenarioName, () => Promise<void>> = {
  burst300: burstScenario("burst300", 1),
  burst300x2: burstScenario("burst300x2", 2),
  concurrent1000,
  quiet
}

// ---------------------------------------------------------------------------------------------
// Main

const printTables = () => {
  const header = ["scenario", "figure", "measured", "target"]
  const cells = rows.map((r) => [r.scenario, r.figure, r.value, r.target])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: ReadonlyArray<string>) => c.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
  const plain = [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n")
  const markdown = ["| scenario | figure | measured | target |", "|---|---|---:|---|", ...cells.map((c) => `| ${c.map((x) => x.replaceAll("|", "\\|")).join(" | ")} |`)].join("\n")
  process.stdout.write(`\n${plain}\n\n${markdown}\n`)
  if (asJson) process.stdout.write(`\n${JSON.stringify({ env: extraEnv, figures }, null, 2)}\n`)
}

const main = async () => {
  log(`logs in ${logDir}${Object.keys(extraEnv).length > 0 ? `; extra environment ${JSON.stringify(extraEnv)}` : ""}`)
  let failures = 0
  for (const name of scenarioNames) {
    if (only !== undefined && only !== name) continue
    const depth = cleanups.length
    const startedAt = Date.now()
    log(`${name}: starting`)
    try {
      await scenarios[name]()
    } catch (error) {
      failures++
      row(name, "FAILED", error instanceof Error ? error.message : String(error))
    } finally {
      await cleanUpTo(depth)
      log(`${name}: done in ${seconds(Date.now() - startedAt)}`)
    }
  }
  printTables()
  return failures === 0 ? 0 : 1
}

let stopping = false
const shutdown = async (code: number) => {
  if (stopping) return
  stopping = true
  await cleanUpTo(0)
  process.exit(code)
}
const deadline = setTimeout(() => {
  log(`the run took over ${runLimitMs / 60_000} min: stopping`)
  printTables()
  void shutdown(1)
}, runLimitMs)
process.on("SIGINT", () => void shutdown(130))
process.on("SIGTERM", () => void shutdown(143))
main().then(
  (code) => {
    clearTimeout(deadline)
    void shutdown(code)
  },
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    void shutdown(1)
  }
)
