/**
 * Webhook benchmark: `npm run bench` (= `node bench/webhook.ts`); options after `--`.
 *
 *  1. Ingest. Baseline: a naive node:http webhook (bench/baseline-server.ts: one Redis Lua
 *     rate-limit call, one `pg` insert, one BullMQ add per request) on its own database, Redis
 *     DB 3 and queue. Product: the real HTTP program (ApiProgram, no worker; bench/product-server.ts)
 *     on its own database and Redis DB 4, with the fake Telegram/OpenAI servers hosted here.
 *     Both run at once, each in its own process; one load generator (bench/load.ts: autocannon,
 *     its own process, 50 connections, a different Telegram update in every request) warms each
 *     up, then measures fixed-duration windows alternating B P P B B P ...
 *  2. Pick-up. The full program (api + worker, one process) on Redis DB 5; N updates at a
 *     moderate rate, each in its own chat; webhook 200 -> fake OpenAI request per message, and
 *     the product's queue_wait_seconds histogram from GET /metrics.
 *
 * Every server listens on 127.0.0.1, every wait is bounded (and the whole run), and everything
 * started is stopped, databases dropped and Redis DBs flushed. The report goes to stdout and
 * between the markers of BENCHMARKS.md.
 *
 * Options: --duration=S (10) --warmup=S (15) --connections=N (50) --rounds=N (3)
 *          --updates=N (200) --rate=PER_S (10) --only=ingest|pickup --no-write
 * Diagnostics (they slow the product down; the figures of the affected window say so):
 *          --profile (CPU profiles of both servers in the first window, summed up)
 *          --trace (time every span of the product by name) --count-writes (its socket writes)
 *          --product-env=K=V,K=V (extra environment for the product, e.g. WORKER_CONCURRENCY=10)
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import pg from "pg"
import { echoReply, type FakeOpenAI, startFakeOpenAI } from "../test/support/FakeOpenAI.ts"
import { type FakeTelegram, startFakeTelegram } from "../test/support/telegram/FakeTelegram.ts"
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
  freePort,
  histogramBuckets,
  machineBusySeconds,
  markerOf,
  nodeFlagsOf,
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
import type { LoadFigures } from "./load.ts"
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
  warmup: Math.min(flag("warmup", 15), 60),
  connections: Math.min(flag("connections", 50), 1_000),
  rounds: Math.min(flag("rounds", 3), 5),
  updates: Math.min(flag("updates", 200), 5_000),
  rate: Math.min(flag("rate", 10), 1_000),
  profile: process.argv.includes("--profile"),
  /** Count the product's socket writes by destination (a diagnostic; slightly slows it). */
  countWrites: process.argv.includes("--count-writes"),
  /** Time every span of the product by name (a diagnostic; slightly slows it). */
  trace: process.argv.includes("--trace"),
  /** Extra environment for the product processes, e.g. --product-env=WORKER_CONCURRENCY=10,LOG_LEVEL=Warn */
  productEnv: Object.fromEntries(
    (process.argv.find((a) => a.startsWith("--product-env="))?.slice("--product-env=".length).split(",") ?? [])
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])
  ) as Record<string, string>,
  /** "ingest" or "pickup" runs that part alone (for investigating; a full run does both). */
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
  /** Postgres work of this server's database over the whole phase (all windows, warm-up included). */
  readonly pg: DbWork
  /** Rows this server stored over the whole phase. */
  readonly rows: number
  readonly rssMb: number
  readonly heapMb: number
  /** The server's event-loop delay during the measured run (product only). */
  readonly loop: LoopDelay | undefined
  readonly writes: string | undefined
  readonly spans: string | undefined
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
  // Telegram (the fake too) only takes https webhooks; the load is posted to the port itself.
  PUBLIC_URL: "https://bot.example.com",
  HOST: "127.0.0.1",
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
  const server = startChild(name, here("./product-server.ts"), [mode, JSON.stringify(env), options.countWrites ? "count-writes" : "-", options.trace ? "trace" : "-"], {
    logDir,
    execArgv: nodeFlagsOf(mode === "api" ? "start:api" : "start")
  })
  cleanups.push(() => server.stop())
  await server.next("ready", 60_000)
  return server
}

interface Target {
  readonly name: "baseline" | "product"
  readonly server: Child
  readonly url: string
  readonly database: string
  /** The table with one row per accepted update. */
  readonly table: string
}

type Window = Omit<LoadResult, "rows" | "pg" | "profile">

/** One measured window of fixed duration on one server, the other server idle. */
const measureWindow = async (load: Child, target: Target, idle: Target, firstId: number, diagnose: boolean): Promise<Window> => {
  await checkpoint()
  const { server, database } = target
  const counting = diagnose && options.countWrites && target.name === "product"
  const tracing = diagnose && options.trace && target.name === "product"
  const profileDir = diagnose && options.profile ? join(logDir, `profile-${target.name}`) : undefined
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
  const writesBefore = counting ? await socketWrites(server) : {}
  if (tracing) server.send({ type: "spans-reset" })
  server.send({ type: "loop-reset" })
  if (profileDir !== undefined) await startProfile(server)
  const sample = () => ({
    groups: cpuSnapshot({ server: server.pid, idleServer: idle.server.pid, load: load.pid, bench: process.pid }, database),
    busy: machineBusySeconds(),
    at: Date.now()
  })
  const redisBefore = await dbWork(database, redisInfo)
  const before = sample()
  load.send({ type: "run", url: target.url, seconds: options.duration, firstId })
  const figures = (await load.next("result", (options.duration + 60) * 1000)).figures as LoadFigures
  const after = sample()
  const redisAfter = await dbWork(database, redisInfo)
  server.send({ type: "cpu" })
  const memory = await server.next("cpu", 10_000)
  if (profileDir !== undefined) await stopProfile(server, profileDir)
  const writes = counting
    ? writesPer(writesBefore, await socketWrites(server), Math.max(1, figures.responses), { [String(pgPort)]: "Postgres", [String(redisPort)]: "Redis" })
    : undefined
  const spans = tracing ? await spanReport(server, Math.max(1, figures.responses)) : undefined
  return {
    name: target.name,
    load: figures,
    rps: figures.ok / figures.seconds,
    cpu: cpuDelta(before.groups, after.groups),
    otherCpuPercent: otherCpuPercent(before, after),
    redisCommands: redisAfter.redisCommands - redisBefore.redisCommands,
    rssMb: Number(memory.rss) / 1_048_576,
    heapMb: Number(memory.heapUsed) / 1_048_576,
    loop: memory.loopDelayMs as LoopDelay | undefined,
    writes,
    spans
  }
}

interface IngestResult {
  readonly baselines: ReadonlyArray<LoadResult>
  readonly products: ReadonlyArray<LoadResult>
  readonly nextId: number
}

/**
 * Both servers up at once on their own database / Redis DB / queue; one long-lived load
 * generator; each server warmed up, then measured windows alternating B P P B B P ... so that a
 * drift of the machine (other work on it) does not favour one side.
 */
const ingestPhase = async (firstId: number): Promise<IngestResult> => {
  const baselineDb = `bench_baseline_${tag}`
  const productDb = `bench_product_${tag}`
  for (const database of [baselineDb, productDb]) {
    await createDatabase(database)
    cleanups.push(() => dropDatabase(database))
  }
  for (const db of [redisDbs.baseline, redisDbs.product]) {
    await flushRedis(db)
    cleanups.push(() => flushRedis(db))
  }
  const baselinePort = await freePort()
  const baselineServer = startChild("baseline-server", here("./baseline-server.ts"), [
    String(baselinePort),
    baselineDb,
    String(redisDbs.baseline),
    `bench-baseline-wakeups-${tag}`
  ], { logDir })
  cleanups.push(() => baselineServer.stop())
  await baselineServer.next("ready", 30_000)
  const fakes = await startFakes()
  const productPort = await freePort()
  const productServer = await startProduct("product-server", "api", productEnv(productPort, productDb, redisDbs.product, fakes))
  const baseline: Target = { name: "baseline", server: baselineServer, url: `http://127.0.0.1:${baselinePort}`, database: baselineDb, table: "telegram_updates" }
  const product: Target = { name: "product", server: productServer, url: `http://127.0.0.1:${productPort}`, database: productDb, table: "messages" }
  const load = startChild("load", here("./load.ts"), [String(options.connections)], { logDir })
  cleanups.push(() => load.stop(5_000))
  await load.next("ready", 30_000)

  let nextId = firstId
  for (const target of [baseline, product]) {
    log(`${target.name}: ${target.url}, warm-up ${options.warmup} s`)
    load.send({ type: "run", url: target.url, seconds: options.warmup, firstId: nextId })
    const warm = (await load.next("result", (options.warmup + 60) * 1000)).figures as LoadFigures
    nextId = warm.lastId + 1
  }
  const windows: Array<Window> = []
  for (let round = 1; round <= options.rounds; round++) {
    const order = round % 2 === 1 ? [baseline, product] : [product, baseline]
    for (const target of order) {
      log(`round ${round}/${options.rounds}: ${target.name}, ${options.duration} s`)
      const window = await measureWindow(load, target, target === baseline ? product : baseline, nextId, round === 1)
      nextId = window.load.lastId + 1
      windows.push(window)
    }
  }
  await load.stop(5_000)
  const rows = new Map<string, number>()
  for (const target of [baseline, product]) {
    rows.set(target.name, await withDb(target.database, async (c) => Number((await c.query(`select count(*) as n from ${target.table}`)).rows[0].n)))
  }
  await productServer.stop()
  await baselineServer.stop()
  const pg = new Map<string, DbWork>()
  for (const target of [baseline, product]) pg.set(target.name, await finalWork(target.database))
  await cleanup()

  const results = (name: Target["name"]) => {
    const mine = windows.filter((w) => w.name === name)
    const profileDir = join(logDir, `profile-${name}`)
    return mine.map((w, i): LoadResult => ({
      ...w,
      rows: rows.get(name) ?? 0,
      pg: pg.get(name)!,
      profile: i === 0 && options.profile ? summarizeProfile(profileDir, { count: w.load.responses, name: "request" }) : undefined
    }))
  }
  return { baselines: results("baseline"), products: results("product"), nextId }
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
  // An LLM-like answer: 300 ms to the first token, then about 11 chunks of 8 characters 20 ms apart.
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
  const profile = profileDir === undefined ? undefined : summarizeProfile(profileDir, { count: Math.max(1, okAt.size), name: "message" })
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
    `${fmt(r.otherCpuPercent, 0)}%`,
    `${int(r.rssMb)} / ${int(r.heapMb)}`
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
  "other",
  "RSS / heap MB"
]

const median = (values: ReadonlyArray<number>) => percentile(values, 50)

/** Which code was measured: the commit, and whether src/ differs from it (read-only git calls). */
const sourceVersion = (): string => {
  try {
    const git = (...args: Array<string>) =>
      execFileSync("git", ["--no-optional-locks", ...args], { cwd: fileURLToPath(new URL("..", import.meta.url)), encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
    const commit = git("rev-parse", "--short", "HEAD")
    const dirty = git("status", "--porcelain", "--", "src", "migrations").length > 0
    return `commit ${commit}${dirty ? " + uncommitted changes in src/ or migrations/" : ""}`
  } catch {
    return "unknown (no git)"
  }
}

const postgresVersion = () =>
  withDb("postgres", async (c) => String((await c.query("show server_version")).rows[0].server_version).split(" ")[0] ?? "?")

const ingestReport = (baselines: ReadonlyArray<LoadResult>, products: ReadonlyArray<LoadResult>): string => {
  const rounds = baselines.map((b, i) => ({ baseline: b, product: products[i]! }))
  const rpsRatio = median(rounds.map((r) => r.product.rps / r.baseline.rps))
  const p99Ratio = median(rounds.map((r) => r.product.load.p99Ms / r.baseline.load.p99Ms))
  const cpuSum = (r: LoadResult) => cpuPerRequestUs(r, "server") + cpuPerRequestUs(r, "postgres") + cpuPerRequestUs(r, "redis")
  const cpuRatio = median(rounds.map((r) => cpuSum(r.product) / cpuSum(r.baseline)))
  // In the order they ran.
  const windows = rounds.flatMap((r, i) => (i % 2 === 0 ? [r.baseline, r.product] : [r.product, r.baseline]).map((w) => ({ ...w, name: `${w.name} r${i + 1}` })))
  const summary = (name: string, list: ReadonlyArray<LoadResult>) =>
    `${name} ${int(median(list.map((w) => w.rps)))} req/s, p50 ${fmt(median(list.map((w) => w.load.p50Ms)), 2)} ms, p99 ${fmt(median(list.map((w) => w.load.p99Ms)), 2)} ms, ${int(median(list.map(cpuSum)))} us CPU/req`
  const phase = (name: string, list: ReadonlyArray<LoadResult>) => {
    const first = list[0]
    return first === undefined
      ? `${name}: n/a`
      : `${name} ${fmt(first.pg.commits / first.rows, 3)} commits and ${fmt((first.pg.inserted + first.pg.updated) / first.rows, 2)} rows written (${int(first.rows)} updates stored)`
  }
  return [
    `Ingest: both servers up at once, each on its own database / Redis DB / queue; ${options.warmup} s warm-up each, then ${options.rounds} rounds of ${options.duration} s measured windows in the order below (the idle server waits). ` +
    `${options.connections} connections, unique Telegram text updates (${int(distinctUsers)} distinct users/chats); autocannon in its own process. ` +
    "CPU columns: CPU time during the window / 2xx answers (sum = server + Postgres + Redis); other: CPU% used meanwhile by everything else on the machine (2 cores = 200%).",
    "",
    table(loadHeader, loadRows(windows)),
    "",
    `medians: ${summary("baseline", baselines)}; ${summary("product", products)}`,
    `product / baseline (median of the per-round ratios): throughput ${fmt(rpsRatio, 2)}x, p99 ${fmt(p99Ratio, 2)}x, CPU per request ${fmt(cpuRatio, 2)}x` +
    ` -> target (throughput >= 1.00x and p99 <= 1.00x) ${rpsRatio >= 1 && p99Ratio <= 1 ? "MET" : "NOT MET"}`,
    `Redis commands per request (whole server, during the windows): ${windows.map((w) => `${w.name} ${fmt(w.redisCommands / w.load.ok, 1)}`).join(", ")}`,
    `Postgres per stored update (whole phase): ${phase("baseline", baselines)}; ${phase("product", products)}`,
    `product event-loop delay during its windows (p50 / p99 / max ms): ${products.map((w, i) => (w.loop === undefined ? "n/a" : `r${i + 1} ${fmt(w.loop.p50, 1)} / ${fmt(w.loop.p99, 1)} / ${fmt(w.loop.max, 0)}`)).join(", ")}`
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
    const { baselines, products, nextId: after } = await ingestPhase(nextId)
    nextId = after
    sections.push(ingestReport(baselines, products))
    for (const [i, b] of baselines.entries()) {
      if (b.profile !== undefined) sections.push(`Baseline server CPU profile (window r${i + 1}; profiler on, so that window's figures are slowed):\n\n${b.profile}`)
    }
    for (const [i, p] of products.entries()) {
      if (p.writes !== undefined) sections.push(`Product server socket writes per request (window r${i + 1}): ${p.writes}`)
      if (p.spans !== undefined) sections.push(`Product server spans (window r${i + 1}; "per unit": per request):\n\n${p.spans}`)
      if (p.profile !== undefined) sections.push(`Product server CPU profile (window r${i + 1}; profiler on, so that window's figures are slowed):\n\n${p.profile}`)
    }
  }
  if (options.only === undefined || options.only === "pickup") sections.push(pickupReport(await pickupPhase(nextId)))

  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? "?"}), Node ${process.version}, Postgres ${await postgresVersion()} and Redis on loopback`
  const report = [`Command: ${command}`, `Date: ${startedAt.toISOString()}`, `Machine: ${machine}`, `Source: ${sourceVersion()}`, "", sections.join("\n\n")].join("\n")
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
const hardLimitMs = (2 * options.warmup + 2 * options.rounds * (options.duration + 20) + 180 + options.updates / options.rate + 180) * 1000
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
