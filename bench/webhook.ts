/**
 * Webhook benchmark: `npm run bench` (= `node bench/webhook.ts`), options after `--`.
 *
 *  1. Baseline: a naive node:http webhook (bench/baseline-server.ts: Redis Lua rate-limit, one
 *     `pg` insert, one BullMQ add per request) on its own database, Redis DB 3 and queue.
 *  2. Product: the real HTTP program (ApiProgram, no worker) on its own database and Redis DB 4,
 *     with fake Telegram/OpenAI servers hosted here.
 *     Both are loaded by the same generator (bench/load.ts: autocannon in its own process),
 *     50 connections, a warm-up then a measured run of fixed duration, unique bodies.
 *  3. Pick-up: the full program (api + worker) on Redis DB 5; N updates at a moderate rate;
 *     webhook 200 -> fake OpenAI request per message, and the queue_wait_seconds histogram.
 *
 * Every server listens on 127.0.0.1; every wait is bounded; everything started is stopped.
 * Options: --duration=S --warmup=S --connections=N --rounds=N --updates=N --rate=PER_S
 *          --profile (CPU-profile the product's server during its load; slows it down)
 *          --no-write (do not update BENCHMARKS.md)
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import pg from "pg"
import { echoReply, type FakeOpenAI, startFakeOpenAI } from "../test/support/FakeOpenAI.ts"
import { type FakeTelegram, startFakeTelegram } from "../test/support/FakeTelegram.ts"
import {
  bucketQuantile,
  type Child,
  type CpuGroups,
  cpuDelta,
  cpuSnapshot,
  createDatabase,
  databaseUrl,
  type DbWork,
  dbWork,
  distinctUsers,
  dropDatabase,
  histogramBuckets,
  machineBusySeconds,
  markerOf,
  otherCpuPercent,
  percentile,
  pgPort,
  redisHost,
  redisPort,
  sleep,
  startChild,
  textUpdateBody,
  webhookSecret
} from "./lib.ts"
import { summarizeProfile } from "./profile.ts"

// ---------------------------------------------------------------------------------------------
// Options

const flag = (name: string, fallback: number): number => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`))
  const value = arg === undefined ? fallback : Number(arg.slice(name.length + 3))
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`)
  return value
}
const options = {
  duration: Math.min(flag("duration", 10), 120),
  warmup: Math.min(flag("warmup", 5), 60),
  connections: Math.min(flag("connections", 50), 1_000),
  rounds: Math.min(flag("rounds", 1), 5),
  updates: Math.min(flag("updates", 200), 5_000),
  rate: Math.min(flag("rate", 50), 1_000),
  profile: process.argv.includes("--profile"),
  /** Count the product's socket writes by destination (a diagnostic; slightly slows it). */
  countWrites: process.argv.includes("--count-writes"),
  /** Time every span of the product by name (a diagnostic; slightly slows it). */
  trace: process.argv.includes("--trace"),
  /** "ingest" or "pickup" runs that part alone (for investigating; a full run does both). */
  /** Extra environment for the product processes, e.g. --product-env=WORKER_CONCURRENCY=10,LOG_LEVEL=Warn */
  productEnv: Object.fromEntries(
    (process.argv.find((a) => a.startsWith("--product-env="))?.slice("--product-env=".length).split(",") ?? [])
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])
  ) as Record<string, string>,
  only: process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length),
  write: !process.argv.includes("--no-write")
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const benchmarksFile = fileURLToPath(new URL("../BENCHMARKS.md", import.meta.url))
const logDir = mkdtempSync(join(tmpdir(), "bench-webhook-"))
const botToken = "123456:TEST-TOKEN"
const openaiKey = "sk-bench-key"
const redisDbs = { baseline: 3, product: 4, e2e: 5 } as const
const tag = `${process.pid}`

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

const flushRedis = async (db: number) => {
  const redis = new Redis({ host: redisHost, port: redisPort, db, lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  await redis.flushdb()
  await redis.quit()
}

const withDb = async <A>(database: string, run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: databaseUrl(database) })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

const redisInfo = async (): Promise<string> => {
  const redis = new Redis({ host: redisHost, port: redisPort, lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  try {
    return await redis.info("stats")
  } finally {
    await redis.quit()
  }
}

/** Postgres counters of a database whose clients have all gone (so their statistics are flushed). */
const finalWork = async (database: string): Promise<DbWork> => {
  await sleep(500)
  return dbWork(database, redisInfo)
}

/** Checkpoint so that WAL written by an earlier phase is not flushed during the next one. */
const checkpoint = () => withDb("postgres", (c) => c.query("checkpoint"))

// Everything started, so that a failure anywhere still stops it all.
const cleanups: Array<() => Promise<void>> = []
const cleanup = async () => {
  while (cleanups.length > 0) {
    const step = cleanups.pop()
    try {
      await step?.()
    } catch (error) {
      log(`cleanup step failed: ${String(error)}`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Load phases

interface LoadFigures {
  readonly seconds: number
  readonly responses: number
  readonly ok: number
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  readonly statusCodes: Record<string, number>
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly meanMs: number
  readonly firstId: number
  readonly lastId: number
}

interface LoopDelay {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

interface LoadResult {
  readonly name: string
  readonly load: LoadFigures
  readonly rps: number
  /** CPU seconds during the measured run, by process group. */
  readonly cpu: CpuGroups
  readonly otherCpuPercent: number
  /** Redis commands (whole server) during the measured run. */
  readonly redisCommands: number
  /** Postgres work over the whole phase (start-up and warm-up included). */
  readonly pg: DbWork | undefined
  readonly rows: number
  readonly rssMb: number
  /** The server's event-loop delay during the measured run (product only). */
  readonly loop: LoopDelay | undefined
  readonly profile: string | undefined
}

type Writes = Record<string, { readonly count: number; readonly bytes: number }>

const socketWrites = async (server: Child): Promise<Writes> => {
  server.send({ type: "writes" })
  return (await server.next("writes", 10_000)).writes as Writes
}

/** Writes between two snapshots per unit, by destination port (named where known). */
const writesPer = (before: Writes, after: Writes, units: number, names: Readonly<Record<string, string>>): string => {
  const byName = new Map<string, { count: number; bytes: number }>()
  for (const [port, value] of Object.entries(after)) {
    const name = names[port] ?? "HTTP answers to clients"
    const entry = byName.get(name) ?? { count: 0, bytes: 0 }
    entry.count += value.count - (before[port]?.count ?? 0)
    entry.bytes += value.bytes - (before[port]?.bytes ?? 0)
    byName.set(name, entry)
  }
  return [...byName.entries()]
    .sort((a, b) => b[1].count - a[1].count)
    .map(([name, v]) => `${name} ${fmt(v.count / units, 1)} writes / ${int(v.bytes / units)} B`)
    .join("; ")
}

interface SpanFigure {
  readonly name: string
  readonly count: number
  readonly totalMs: number
  readonly p50Ms: number
  readonly p99Ms: number
}

const spanReport = async (server: Child, units: number): Promise<string> => {
  server.send({ type: "spans" })
  const spans = (await server.next("spans", 10_000)).spans as ReadonlyArray<SpanFigure>
  return table(
    ["span (SQL: statement start)", "count", "per unit", "p50 ms", "p99 ms", "total ms"],
    spans.map((s) => [s.name, int(s.count), fmt(s.count / units, 2), fmt(s.p50Ms, 2), fmt(s.p99Ms, 2), int(s.totalMs)])
  )
}

const startProfile = async (server: Child) => {
  server.send({ type: "profile-start" })
  await server.next("profile-started", 10_000)
}

const stopProfile = async (server: Child, dir: string) => {
  server.send({ type: "profile-stop", file: join(dir, `${server.name}.cpuprofile`) })
  await server.next("profile-written", 30_000)
}

const runLoad = async (
  name: string,
  server: Child,
  url: string,
  database: string,
  firstId: number,
  profileDir?: string
): Promise<Omit<LoadResult, "rows" | "profile" | "pg">> => {
  await checkpoint()
  const load = startChild(`${name}-load`, here("./load.ts"), [
    url,
    String(options.connections),
    String(options.warmup),
    String(options.duration),
    String(firstId)
  ], { logDir })
  cleanups.push(() => load.stop(5_000))
  await load.next("measure-start", (options.warmup + 60) * 1000)
  server.send({ type: "loop-reset" })
  if (profileDir !== undefined) await startProfile(server)
  const sample = () => ({ groups: cpuSnapshot({ server: server.pid, load: load.pid, bench: process.pid }, database), busy: machineBusySeconds(), at: Date.now() })
  const redisBefore = await dbWork(database, redisInfo)
  const before = sample()
  const result = await load.next("result", (options.duration + 60) * 1000)
  const after = sample()
  const redisAfter = await dbWork(database, redisInfo)
  server.send({ type: "cpu" })
  const memory = await server.next("cpu", 10_000)
  if (profileDir !== undefined) await stopProfile(server, profileDir)
  await load.stop(5_000)
  const measured = result.measured as LoadFigures
  return {
    name,
    load: measured,
    rps: measured.ok / measured.seconds,
    cpu: cpuDelta(before.groups, after.groups),
    otherCpuPercent: otherCpuPercent(before, after),
    redisCommands: redisAfter.redisCommands - redisBefore.redisCommands,
    rssMb: Number(memory.rss) / 1_048_576,
    loop: memory.loopDelayMs as LoopDelay | undefined
  }
}

const baselinePhase = async (round: number, firstId: number): Promise<LoadResult> => {
  const database = `bench_baseline_${tag}_${round}`
  await createDatabase(database)
  cleanups.push(() => dropDatabase(database))
  await flushRedis(redisDbs.baseline)
  cleanups.push(() => flushRedis(redisDbs.baseline))
  const port = await freePort()
  const server = startChild(`baseline-server-${round}`, here("./baseline-server.ts"), [
    String(port),
    database,
    String(redisDbs.baseline),
    `bench-baseline-wakeups-${tag}`
  ], { logDir })
  cleanups.push(() => server.stop())
  await server.next("ready", 30_000)
  log(`baseline (round ${round}): listening on 127.0.0.1:${port}, loading`)
  const figures = await runLoad("baseline", server, `http://127.0.0.1:${port}`, database, firstId)
  const rows = await withDb(database, async (c) => Number((await c.query("select count(*) as n from telegram_updates")).rows[0].n))
  await server.stop()
  const pg = await finalWork(database)
  await cleanup()
  return { ...figures, rows, pg, profile: undefined }
}

interface Fakes {
  readonly telegram: FakeTelegram
  readonly openai: FakeOpenAI
}

const startFakes = async (): Promise<Fakes> => {
  const telegram = await startFakeTelegram({ token: botToken })
  const openai = await startFakeOpenAI({ apiKey: openaiKey })
  cleanups.push(async () => {
    await Promise.all([telegram.close(), openai.close()])
  })
  return { telegram, openai }
}

const productEnv = (port: number, database: string, redisDb: number, fakes: Fakes): Record<string, string> => ({
  PORT: String(port),
  PUBLIC_URL: `http://127.0.0.1:${port}`,
  TELEGRAM_BOT_TOKEN: botToken,
  TELEGRAM_WEBHOOK_SECRET: webhookSecret,
  TELEGRAM_API_ROOT: fakes.telegram.url,
  OPENAI_API_KEY: openaiKey,
  OPENAI_BASE_URL: `${fakes.openai.url}/v1`,
  OPENAI_MODEL: "gpt-bench",
  DATABASE_URL: databaseUrl(database),
  REDIS_URL: `redis://${redisHost}:${redisPort}/${redisDb}`,
  LOG_LEVEL: "Error",
  SHUTDOWN_GRACE_SECONDS: "5",
  ...options.productEnv
})

const startProduct = async (name: string, mode: "api" | "all", env: Record<string, string>) => {
  const server = startChild(name, here("./product-server.ts"), [mode, JSON.stringify(env), options.countWrites ? "count-writes" : "-", options.trace ? "trace" : "-"], { logDir })
  cleanups.push(() => server.stop())
  await server.next("ready", 60_000)
  return server
}

const productPhase = async (round: number, firstId: number): Promise<LoadResult> => {
  const database = `bench_product_${tag}_${round}`
  await createDatabase(database)
  cleanups.push(() => dropDatabase(database))
  await flushRedis(redisDbs.product)
  cleanups.push(() => flushRedis(redisDbs.product))
  const fakes = await startFakes()
  const port = await freePort()
  const profileDir = options.profile ? join(logDir, `profile-${round}`) : undefined
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
  const server = await startProduct(`product-server-${round}`, "api", productEnv(port, database, redisDbs.product, fakes))
  log(`product (round ${round}): listening on 127.0.0.1:${port}, loading`)
  const figures = await runLoad("product", server, `http://127.0.0.1:${port}`, database, firstId, profileDir)
  const rows = await withDb(database, async (c) => Number((await c.query("select count(*) as n from messages")).rows[0].n))
  await server.stop()
  const pg = await finalWork(database)
  await cleanup()
  const profile = profileDir === undefined ? undefined : summarizeProfile(profileDir)
  return { ...figures, rows, pg, profile }
}

// ---------------------------------------------------------------------------------------------
// Pick-up phase

interface PickupResult {
  readonly posted: number
  readonly accepted: number
  readonly reachedLlm: number
  readonly postP50Ms: number
  readonly postP99Ms: number
  readonly toLlmP50Ms: number
  readonly toLlmP99Ms: number
  readonly toLlmMaxMs: number
  readonly waitBuckets: ReadonlyArray<{ readonly le: number; readonly count: number }>
  readonly waitP50Ms: number
  readonly waitP99Ms: number
  readonly turnP50Ms: number
  readonly turnP99Ms: number
  readonly turnsDone: number
  /** From the first post to the last turn's end. */
  readonly seconds: number
  readonly postingSeconds: number
  readonly serverCpuPercentPosting: number
  readonly serverCpuMsPerMessage: number
  readonly postgresCpuMsPerMessage: number
  readonly benchCpuPercent: number
  readonly otherCpuPercent: number
  readonly serverLoop: LoopDelay
  readonly idle: { readonly cpuPercent: number; readonly redisPerSecond: number }
  readonly writes: string | undefined
  readonly spans: string | undefined
  readonly perMessage: {
    readonly pgCommits: number
    readonly pgRowsWritten: number
    readonly redisCommands: number
    readonly telegram: string
  }
  readonly profile: string | undefined
}

const scrape = async (url: string): Promise<string> => {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })
  return response.text()
}

const counterTotal = (text: string, name: string): number =>
  text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.split(/\s+/).at(-1)), 0)

const pickupPhase = async (firstId: number): Promise<PickupResult> => {
  const database = `bench_e2e_${tag}`
  await createDatabase(database)
  cleanups.push(() => dropDatabase(database))
  await flushRedis(redisDbs.e2e)
  cleanups.push(() => flushRedis(redisDbs.e2e))
  const fakes = await startFakes()
  // An LLM-like answer: 300 ms to the first token, then 9 chunks 20 ms apart.
  fakes.openai.setReply((body) => {
    const echo = echoReply(body)
    return { text: typeof echo === "string" ? `${echo} and a little more text to stream.` : "…", firstTokenDelayMs: 300, chunkDelayMs: 20 }
  })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const profileDir = options.profile ? join(logDir, "profile-e2e") : undefined
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
  const server = await startProduct("e2e-server", "all", productEnv(port, database, redisDbs.e2e, fakes))
  await sleep(1_500) // start-up's Postgres statistics flushed before the first snapshot
  // What the process costs with no traffic at all (BullMQ worker, sweeper, timers).
  const idleFrom = { redis: await dbWork(database, redisInfo), at: Date.now(), server: cpuSnapshot({ server: server.pid }, database).server ?? 0 }
  await sleep(3_000)
  const idleTo = { redis: await dbWork(database, redisInfo), at: Date.now(), server: cpuSnapshot({ server: server.pid }, database).server ?? 0 }
  const idle = {
    cpuPercent: (100 * (idleTo.server - idleFrom.server)) / ((idleTo.at - idleFrom.at) / 1000),
    redisPerSecond: (idleTo.redis.redisCommands - idleFrom.redis.redisCommands) / ((idleTo.at - idleFrom.at) / 1000)
  }
  const sample = () => ({ groups: cpuSnapshot({ server: server.pid, bench: process.pid }, database), busy: machineBusySeconds(), at: Date.now() })
  const loopDelay = monitorEventLoopDelay({ resolution: 10 })
  loopDelay.enable()
  server.send({ type: "loop-reset" })
  if (profileDir !== undefined) await startProfile(server)
  const writesBefore = options.countWrites ? await socketWrites(server) : {}
  if (options.trace) server.send({ type: "spans-reset" })
  const workBefore = await dbWork(database, redisInfo)
  const telegramCallsBefore = fakes.telegram.calls.length
  const before = sample()
  log(`pick-up: api + worker on ${url}, posting ${options.updates} updates at ${options.rate}/s`)

  // Each update in its own chat, so each is a separate wake-up and turn.
  const okAt = new Map<number, number>()
  const postMs: Array<number> = []
  const started = performance.now()
  const posts: Array<Promise<void>> = []
  for (let i = 0; i < options.updates; i++) {
    const due = started + (i * 1000) / options.rate
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    const n = firstId + i
    const body = textUpdateBody(n, { users: options.updates, userBase: 700_000_000 })
    posts.push((async () => {
      const sentAt = performance.now()
      try {
        const response = await fetch(`${url}/telegram/webhook`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": webhookSecret },
          body,
          signal: AbortSignal.timeout(10_000)
        })
        await response.arrayBuffer()
        if (response.status === 200) {
          okAt.set(n, Date.now())
          postMs.push(performance.now() - sentAt)
        }
      } catch {
        // counted as not accepted
      }
    })())
  }
  await Promise.all(posts)
  const postedAt = sample()
  // Every turn finished (bounded), so the histograms and the work counts are complete.
  const deadline = Date.now() + 30_000
  let metrics = await scrape(url)
  while (counterTotal(metrics, "chat_turns_total") < okAt.size && Date.now() < deadline) {
    await sleep(200)
    metrics = await scrape(url)
  }
  const after = sample()
  loopDelay.disable()
  server.send({ type: "cpu" })
  const serverLoop = (await server.next("cpu", 10_000)).loopDelayMs as LoopDelay
  if (profileDir !== undefined) await stopProfile(server, profileDir)
  const writes = options.countWrites
    ? writesPer(writesBefore, await socketWrites(server), Math.max(1, okAt.size), {
      [String(pgPort)]: "Postgres",
      [String(redisPort)]: "Redis",
      [new URL(fakes.telegram.url).port]: "Telegram",
      [new URL(fakes.openai.url).port]: "OpenAI"
    })
    : undefined
  const spans = options.trace ? await spanReport(server, Math.max(1, okAt.size)) : undefined
  const telegramCalls = new Map<string, number>()
  for (const call of fakes.telegram.calls.slice(telegramCallsBefore)) telegramCalls.set(call.method, (telegramCalls.get(call.method) ?? 0) + 1)
  const redisAfter = await dbWork(database, redisInfo)

  const toLlm: Array<number> = []
  for (const request of fakes.openai.requests) {
    const last = [...(request.body.messages ?? [])].reverse().find((m) => m.role === "user")
    const n = typeof last?.content === "string" ? markerOf(last.content) : undefined
    const at = n === undefined ? undefined : okAt.get(n)
    if (at !== undefined) toLlm.push(request.receivedAt - at)
  }
  const wait = histogramBuckets(metrics, "queue_wait_seconds")
  const turn = histogramBuckets(metrics, "chat_turn_duration_seconds")
  await server.stop()
  const workAfter = await finalWork(database)
  await cleanup()
  const profile = profileDir === undefined ? undefined : summarizeProfile(profileDir)
  const seconds = (after.at - before.at) / 1000
  const percentOf = (group: string, from = before, to = after) =>
    (100 * ((to.groups[group] ?? 0) - (from.groups[group] ?? 0))) / ((to.at - from.at) / 1000)
  return {
    posted: options.updates,
    accepted: okAt.size,
    reachedLlm: toLlm.length,
    postP50Ms: percentile(postMs, 50),
    postP99Ms: percentile(postMs, 99),
    toLlmP50Ms: percentile(toLlm, 50),
    toLlmP99Ms: percentile(toLlm, 99),
    toLlmMaxMs: Math.max(...toLlm),
    waitBuckets: wait,
    waitP50Ms: bucketQuantile(wait, 0.5) * 1000,
    waitP99Ms: bucketQuantile(wait, 0.99) * 1000,
    turnP50Ms: bucketQuantile(turn, 0.5) * 1000,
    turnP99Ms: bucketQuantile(turn, 0.99) * 1000,
    turnsDone: counterTotal(metrics, "chat_turns_total"),
    seconds,
    postingSeconds: (postedAt.at - before.at) / 1000,
    serverCpuPercentPosting: percentOf("server", before, postedAt),
    serverCpuMsPerMessage: (1000 * ((after.groups.server ?? 0) - (before.groups.server ?? 0))) / Math.max(1, okAt.size),
    postgresCpuMsPerMessage: (1000 * ((after.groups.postgres ?? 0) - (before.groups.postgres ?? 0))) / Math.max(1, okAt.size),
    benchCpuPercent: percentOf("bench"),
    otherCpuPercent: otherCpuPercent(before, after),
    serverLoop,
    idle,
    writes,
    spans,
    perMessage: {
      pgCommits: (workAfter.commits - workBefore.commits) / Math.max(1, okAt.size),
      pgRowsWritten: (workAfter.inserted + workAfter.updated - workBefore.inserted - workBefore.updated) / Math.max(1, okAt.size),
      redisCommands: (redisAfter.redisCommands - workBefore.redisCommands) / Math.max(1, okAt.size),
      telegram: [...telegramCalls.entries()].sort((a, b) => b[1] - a[1]).map(([method, n]) => `${method} ${fmt(n / Math.max(1, okAt.size), 2)}`).join(", ")
    },
    profile
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : "n/a")
const int = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a")

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  return [line(header), `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 1) + "-" : "-".repeat(w + 1) + ":")).join("|")}|`, ...rows.map(line)].join("\n")
}

const cpuPerRequestUs = (r: LoadResult, group: string) => ((r.cpu[group] ?? 0) / r.load.ok) * 1e6

const loadRows = (results: ReadonlyArray<LoadResult>) =>
  results.map((r) => [
    r.name,
    int(r.rps),
    fmt(r.load.p50Ms, 2),
    fmt(r.load.p99Ms, 2),
    fmt(r.load.maxMs, 1),
    int(r.load.ok),
    int(r.load.non2xx),
    int(r.load.errors + r.load.timeouts),
    int(cpuPerRequestUs(r, "server")),
    int(cpuPerRequestUs(r, "postgres")),
    int(cpuPerRequestUs(r, "redis")),
    int(cpuPerRequestUs(r, "server") + cpuPerRequestUs(r, "postgres") + cpuPerRequestUs(r, "redis")),
    int(cpuPerRequestUs(r, "load")),
    int(r.rssMb)
  ])

const loadHeader = [
  "server",
  "req/s",
  "p50 ms",
  "p99 ms",
  "max ms",
  "2xx",
  "non-2xx",
  "errors",
  "CPU us/req server",
  "postgres",
  "redis",
  "sum",
  "loadgen",
  "RSS MB"
]

const median = (values: ReadonlyArray<number>) => percentile(values, 50)

const postgresVersion = () =>
  withDb("postgres", async (c) => String((await c.query("show server_version")).rows[0].server_version).split(" ")[0] ?? "?")

const ingestReport = (baselines: ReadonlyArray<LoadResult>, products: ReadonlyArray<LoadResult>): string => {
  const rounds = baselines.map((b, i) => ({ baseline: b, product: products[i]! }))
  const rpsRatio = median(rounds.map((r) => r.product.rps / r.baseline.rps))
  const p99Ratio = median(rounds.map((r) => r.product.load.p99Ms / r.baseline.load.p99Ms))
  const named = (r: LoadResult, name: string, i: number) => ({ ...r, name: options.rounds > 1 ? `${name} #${i + 1}` : name })
  return [
    `Ingest: ${options.connections} connections, ${options.warmup} s warm-up then ${options.duration} s measured, unique Telegram text updates (${int(distinctUsers)} distinct users/chats); autocannon in its own process. CPU columns: CPU time during the measured run / 2xx answers.`,
    "",
    table(loadHeader, rounds.flatMap((r, i) => loadRows([named(r.baseline, "baseline", i), named(r.product, "product", i)]))),
    "",
    `product / baseline: throughput ${fmt(rpsRatio, 2)}x, p99 ${fmt(p99Ratio, 2)}x${options.rounds > 1 ? " (medians over rounds)" : ""}` +
    ` -> target (throughput >= 1.00x and p99 <= 1.00x) ${rpsRatio >= 1 && p99Ratio <= 1 ? "MET" : "NOT MET"}`,
    "Work per accepted request (Redis: commands of the whole server during the measured run; Postgres: the phase's transactions and rows of its database, warm-up included):",
    "",
    table(
      ["server", "Redis commands", "PG commits", "PG rows written", "server event-loop delay p50 / p99 / max ms"],
      rounds.flatMap((r, i) => [named(r.baseline, "baseline", i), named(r.product, "product", i)]).map((r) => [
        r.name,
        fmt(r.redisCommands / r.load.ok, 2),
        r.pg === undefined ? "n/a" : fmt(r.pg.commits / r.rows, 3),
        r.pg === undefined ? "n/a" : fmt((r.pg.inserted + r.pg.updated) / r.rows, 2),
        r.loop === undefined ? "n/a" : `${fmt(r.loop.p50, 1)} / ${fmt(r.loop.p99, 1)} / ${fmt(r.loop.max, 0)}`
      ])
    ),
    "",
    `rows stored (warm-up included): baseline ${rounds.map((r) => int(r.baseline.rows)).join(", ")} updates; product ${rounds.map((r) => int(r.product.rows)).join(", ")} messages`,
    `CPU used by other processes during the measured runs (noise; 2 cores = 200%): ${rounds.map((r) => `baseline ${fmt(r.baseline.otherCpuPercent, 0)}%, product ${fmt(r.product.otherCpuPercent, 0)}%`).join("; ")}`
  ].join("\n")
}

const pickupReport = (pickup: PickupResult): string => {
  const waitBuckets = pickup.waitBuckets.filter((b, i, all) => i === 0 || b.count !== all[i - 1]?.count)
  return [
    `Pick-up: api + worker in one process, ${pickup.posted} updates at ${options.rate}/s, each in its own chat; fake LLM answers after 300 ms, then streams 20 ms apart.`,
    "",
    table(["measure", "p50 ms", "p99 ms", "n"], [
      ["webhook POST -> 200", fmt(pickup.postP50Ms, 2), fmt(pickup.postP99Ms, 2), String(pickup.accepted)],
      ["webhook 200 -> fake OpenAI request", fmt(pickup.toLlmP50Ms, 0), fmt(pickup.toLlmP99Ms, 0), String(pickup.reachedLlm)],
      ["queue_wait_seconds (histogram, interpolated)", fmt(pickup.waitP50Ms, 1), fmt(pickup.waitP99Ms, 1), String(pickup.waitBuckets.at(-1)?.count ?? 0)],
      ["chat_turn_duration_seconds (histogram, interpolated)", fmt(pickup.turnP50Ms, 0), fmt(pickup.turnP99Ms, 0), String(pickup.turnsDone)]
    ]),
    "",
    `queue_wait_seconds buckets (cumulative): ${waitBuckets.map((b) => `<=${Number.isFinite(b.le) ? `${b.le * 1000}ms` : "+Inf"}: ${b.count}`).join(", ")}`,
    `(webhook 200 -> OpenAI request uses Date.now() in the bench process, 1 ms resolution; max ${fmt(pickup.toLlmMaxMs, 0)} ms)`,
    `api + worker process: ${fmt(pickup.serverCpuPercentPosting, 0)}% of a core while posting (${fmt(pickup.postingSeconds, 1)} s); ${fmt(pickup.serverCpuMsPerMessage, 1)} ms CPU per message (webhook + turn, first post to last turn, ${fmt(pickup.seconds, 1)} s); event-loop delay p50 ${fmt(pickup.serverLoop.p50, 1)} ms, p99 ${fmt(pickup.serverLoop.p99, 1)} ms, max ${fmt(pickup.serverLoop.max, 0)} ms`,
    `idle (3 s before posting): api + worker process ${fmt(pickup.idle.cpuPercent, 1)}% of a core, Redis ${fmt(pickup.idle.redisPerSecond, 0)} commands/s (whole server)`,
    `per message: Postgres ${fmt(pickup.perMessage.pgCommits, 1)} commits, ${fmt(pickup.perMessage.pgRowsWritten, 1)} rows written, ${fmt(pickup.postgresCpuMsPerMessage, 2)} ms CPU; Redis ${fmt(pickup.perMessage.redisCommands, 1)} commands (whole server); Telegram calls: ${pickup.perMessage.telegram}`,
    ...(pickup.writes === undefined ? [] : [`socket writes per message (api + worker process): ${pickup.writes}`]),
    `CPU of this bench process (fakes + poster) ${fmt(pickup.benchCpuPercent, 0)}%, of other processes (noise) ${fmt(pickup.otherCpuPercent, 0)}% (2 cores = 200%)`,
    ...(pickup.spans === undefined ? [] : ["", `spans of the api + worker process, first post to last turn ("per unit": per message):\n\n${pickup.spans}`]),
    ...(pickup.profile === undefined ? [] : ["", `api + worker process CPU profile (profiler on):\n\n${pickup.profile}`])
  ].join("\n")
}

const main = async () => {
  const startedAt = new Date()
  log(`logs in ${logDir}`)
  const sections: Array<string> = []
  let nextId = 1
  if (options.only === undefined || options.only === "ingest") {
    const baselines: Array<LoadResult> = []
    const products: Array<LoadResult> = []
    for (let round = 1; round <= options.rounds; round++) {
      const baseline = await baselinePhase(round, nextId)
      nextId = baseline.load.lastId + 1
      baselines.push(baseline)
      const product = await productPhase(round, nextId)
      nextId = product.load.lastId + 1
      products.push(product)
    }
    sections.push(ingestReport(baselines, products))
    for (const [i, p] of products.entries()) {
      if (p.profile !== undefined) {
        sections.push(`Product server CPU profile (round ${i + 1}; profiler on, so its figures above are slowed):\n\n${p.profile}`)
      }
    }
  }
  if (options.only === undefined || options.only === "pickup") sections.push(pickupReport(await pickupPhase(nextId)))

  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? "?"}), Node ${process.version}, Postgres ${await postgresVersion()} and Redis on loopback`
  const report = [`Command: ${command}`, `Date: ${startedAt.toISOString()}`, `Machine: ${machine}`, "", sections.join("\n\n")].join("\n")
  process.stdout.write(`\n${report}\n`)

  if (options.write) {
    const start = "<!-- bench:latest:start -->"
    const end = "<!-- bench:latest:end -->"
    let text: string
    try {
      text = readFileSync(benchmarksFile, "utf8")
    } catch {
      text = `# Benchmarks\n\n## Latest run (written by \`npm run bench\`)\n\n${start}\n${end}\n`
    }
    const from = text.indexOf(start)
    const to = text.indexOf(end)
    if (from >= 0 && to > from) {
      writeFileSync(benchmarksFile, `${text.slice(0, from + start.length)}\n\n\`\`\`text\n${report}\n\`\`\`\n\n${text.slice(to)}`)
      log(`latest figures written to ${benchmarksFile}`)
    } else {
      log(`BENCHMARKS.md has no ${start} ... ${end} section: not written`)
    }
  }
}

// A hard bound on the whole run, whatever happens.
const hardLimitMs = (options.rounds * (options.warmup + options.duration + 150) + 300) * 1000
const watchdog = setTimeout(() => {
  log(`run exceeded ${hardLimitMs / 1000} s: stopping`)
  void cleanup().finally(() => process.exit(2))
}, hardLimitMs)
watchdog.unref()
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`)
    void cleanup().finally(() => process.exit(130))
  })
}

try {
  await main()
  await cleanup()
  clearTimeout(watchdog)
  log("done")
  process.exit(0)
} catch (error) {
  log(`failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
  await cleanup()
  process.exit(1)
}
