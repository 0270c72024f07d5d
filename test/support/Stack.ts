import { ConfigProvider, Effect, Exit, Layer, Scope } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Redis } from "ioredis"
import { AllProgram, ApiProgram, WorkerProgram } from "../../src/layers/Programs.ts"
import { type FakeOpenAI, startFakeOpenAI } from "./FakeOpenAI.ts"
import { type FakeTelegram, startFakeTelegram } from "./telegram/FakeTelegram.ts"
import { FakeLemonSqueezy } from "./FakeLemonSqueezy.ts"
import { type LemonEvent, lemonSignature, lemonWire } from "./fixtures.ts"
import { TcpProxy } from "./TcpProxy.ts"

export const webhookSecret = "test_secret-0123456789abcdef0123456789"
export const botToken = "123456:TEST-TOKEN"
export const openaiKey = "sk-test-key-never-logged"

const pgHost = process.env.PGHOST ?? "127.0.0.1"
const pgPort = Number(process.env.PGPORT ?? 5432)
const redisPort = 6379

const canListen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)))
  })

/**
 * A free port for a program to listen on, below the kernel's ephemeral range (32768 and up): the
 * fakes and clients of tests running alongside take theirs from that range (port 0), so they can
 * never be handed this one between now and the program's listen.
 */
export const freePort = async (): Promise<number> => {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (await canListen(port)) return port
  }
}

let databases = 0

/** Runs SQL on a database of the real Postgres (not through a proxy); returns psql's unaligned output. */
export const queryDatabase = (database: string, sql: string): string =>
  execFileSync("psql", ["-h", pgHost, "-p", String(pgPort), "-U", "postgres", "-d", database, "-qAtc", sql], {
    encoding: "utf8",
    env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" }
  }).trim()

/** A fresh, empty database on the real Postgres for one stack. */
export const createDatabase = (): { readonly name: string; readonly drop: () => void } => {
  const name = `bot_test_${process.pid}_${++databases}`
  queryDatabase("postgres", `drop database if exists ${name} with (force)`)
  queryDatabase("postgres", `create database ${name}`)
  return { name, drop: () => queryDatabase("postgres", `drop database if exists ${name} with (force)`) }
}

/**
 * A Redis database of its own, empty, for one stack: test files run at once, and two programs on
 * one database would share their queue and rate limits (and each start would wipe the other's).
 * Leased in DB 0 (`SET NX`, expiring after 10 minutes should a test process die) from DBs 3-15.
 */
export const leaseRedisDb = async (): Promise<{ readonly db: number; readonly release: () => Promise<void> }> => {
  const admin = new Redis({ port: redisPort, host: "127.0.0.1", db: 0 })
  for (;;) {
    for (let db = 3; db < 16; db++) {
      const key = `bot-test:redis-db:${db}`
      if (await admin.set(key, String(process.pid), "PX", 600_000, "NX")) {
        const redis = new Redis({ port: redisPort, host: "127.0.0.1", db })
        await redis.flushdb()
        await redis.quit()
        return {
          db,
          release: async () => {
            await admin.del(key)
            await admin.quit()
          }
        }
      }
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}

export interface StackOptions {
  /** "shared": Postgres + Redis (behind cuttable proxies); "embedded": PGlite and in-process queue. */
  readonly mode?: "shared" | "embedded"
  readonly program?: "all" | "api" | "worker"
  /** Billing on, against a fake LemonSqueezy (the variants are those of the real fixtures). */
  readonly billing?: boolean
  readonly env?: Readonly<Record<string, string>>
}

/** The billing settings of a stack with `billing: true`. */
export const lemon = {
  apiKey: "lemon-test-api-key",
  storeId: "91257",
  promoVariant: "1090954",
  standardVariant: "394420",
  webhookSecret: "lemon-webhook-secret"
}

export interface Stack {
  readonly url: string
  readonly env: Readonly<Record<string, string>>
  readonly telegram: FakeTelegram
  readonly openai: FakeOpenAI
  /** With `billing: true`. */
  readonly lemonSqueezy: FakeLemonSqueezy | undefined
  readonly postgres: TcpProxy | undefined
  readonly redis: TcpProxy | undefined
  readonly databaseName: string | undefined
  readonly post: (update: unknown, headers?: Record<string, string>) => Promise<Response>
  /** POSTs a LemonSqueezy event as LemonSqueezy would (wire bytes, signed with the test secret unless `signature` is given). */
  readonly postLemon: (event: LemonEvent | string, options?: { readonly signature?: string | null }) => Promise<Response>
  /** Runs SQL on the stack's database (through the real server, not the proxy). */
  readonly query: (sql: string) => string
  /** Forgets the fakes' recorded calls and scripted replies and faults (between tests). */
  readonly resetFakes: () => void
  /** Stops the program (as SIGTERM would) and keeps the fakes and the database. */
  readonly stopProgram: () => Promise<void>
  readonly stop: () => Promise<void>
}

/** Boots a program in this process on loopback, wired to fresh fakes and fresh storage. */
export const startStack = async (options: StackOptions = {}): Promise<Stack> => {
  const mode = options.mode ?? "shared"
  const telegram = await startFakeTelegram({ token: botToken })
  const openai = await startFakeOpenAI({ apiKey: openaiKey })
  const lemonSqueezy = options.billing ? await FakeLemonSqueezy.start(lemon.apiKey) : undefined
  const port = await freePort()
  const database = mode === "shared" ? createDatabase() : undefined
  const postgres = mode === "shared" ? await TcpProxy.start(pgPort, pgHost) : undefined
  const redis = mode === "shared" ? await TcpProxy.start(redisPort) : undefined
  const dataDir = mode === "embedded" ? mkdtempSync(join(tmpdir(), "bot-embedded-")) : undefined
  const redisLease = mode === "shared" ? await leaseRedisDb() : undefined

  const env: Record<string, string> = {
    PORT: String(port),
    // Servers started by tests listen on loopback only, webhook mode included.
    HOST: "127.0.0.1",
    TELEGRAM_BOT_TOKEN: botToken,
    TELEGRAM_WEBHOOK_SECRET: webhookSecret,
    TELEGRAM_API_ROOT: telegram.url,
    OPENAI_API_KEY: openaiKey,
    OPENAI_BASE_URL: `${openai.url}/v1`,
    OPENAI_MODEL: "gpt-test",
    LOG_LEVEL: "Error",
    SWEEP_INTERVAL_SECONDS: "1",
    TURN_LEASE_SECONDS: "3",
    SHUTDOWN_GRACE_SECONDS: "3",
    // The limits' own tests set theirs; the others should not meet them.
    RATE_LIMIT_LLM_PER_MINUTE: "1000",
    // Tests that post messages in quick succession expect one answer each; bursts have their own.
    BURST_MERGE_MS: "0",
    ...(lemonSqueezy
      ? {
        LEMON_API_KEY: lemon.apiKey,
        LEMON_API_URL: lemonSqueezy.url,
        LEMON_STORE_ID: lemon.storeId,
        LEMON_VARIANT_PROMO: lemon.promoVariant,
        LEMON_VARIANT_STANDARD: lemon.standardVariant,
        LEMON_WEBHOOK_SECRET: lemon.webhookSecret
      }
      : {}),
    ...(database && postgres
      ? { DATABASE_URL: `postgres://postgres@127.0.0.1:${postgres.port}/${database.name}` }
      : {}),
    ...(redis && redisLease ? { REDIS_URL: `redis://127.0.0.1:${redis.port}/${redisLease.db}` } : {}),
    ...(dataDir ? { DATA_DIR: dataDir } : {}),
    ...options.env
  }
  const program = { all: AllProgram, api: ApiProgram, worker: WorkerProgram }[options.program ?? "all"]
  const scope = Effect.runSync(Scope.make())
  const closeOutside = async () => {
    await Promise.all([telegram.close(), openai.close(), lemonSqueezy?.close(), postgres?.close(), redis?.close()])
    await redisLease?.release()
    database?.drop()
    if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    await Effect.runPromise(
      Layer.buildWithScope(program.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))), scope)
    )
  } catch (error) {
    // A start that fails (the start-up checks' tests) leaves nothing behind.
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await closeOutside()
    throw error
  }
  const url = `http://127.0.0.1:${port}`
  let running = true
  const stopProgram = async () => {
    if (!running) return
    running = false
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
  return {
    url,
    env,
    telegram,
    openai,
    lemonSqueezy,
    postgres,
    redis,
    databaseName: database?.name,
    post: (update, headers = {}) =>
      fetch(`${url}/telegram/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": webhookSecret, ...headers },
        body: typeof update === "string" ? update : JSON.stringify(update)
      }),
    postLemon: (event, options = {}) => {
      const body = typeof event === "string" ? event : lemonWire(event)
      const signature = options.signature === undefined ? lemonSignature(body, lemon.webhookSecret) : options.signature
      const name = typeof event === "string" ? "unknown" : event.meta.event_name
      return fetch(`${url}/lemonsqueezy/webhook`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-event-name": name, ...(signature === null ? {} : { "x-signature": signature }) },
        body
      })
    },
    query: (sql) => {
      if (!database) throw new Error("query() needs the shared mode")
      return queryDatabase(database.name, sql)
    },
    resetFakes: () => {
      telegram.reset()
      openai.reset()
      lemonSqueezy?.reset()
    },
    stopProgram,
    stop: async () => {
      await stopProgram()
      await closeOutside()
    }
  }
}

/** Waits until the message of an update reaches a status in the mailbox. */
export const waitForStatus = async (
  stack: Pick<Stack, "query">,
  updateId: number,
  status: string,
  timeoutMs = 10_000
) => {
  const deadline = Date.now() + timeoutMs
  let seen = ""
  while (Date.now() < deadline) {
    seen = stack.query(`select status from messages where update_id = ${updateId}`)
    if (seen === status) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`update ${updateId}: status ${JSON.stringify(seen)}, expected ${status}`)
}

/**
 * Polls GET /metrics until the first number `pattern` captures passes `check` (a definite
 * event to wait for before asserting that something did not happen).
 */
export const waitForMetric = async (
  stack: Pick<Stack, "url">,
  pattern: RegExp,
  check: (value: number) => boolean,
  timeoutMs = 10_000
) => {
  const deadline = Date.now() + timeoutMs
  let seen: number | undefined
  while (Date.now() < deadline) {
    const match = pattern.exec(await (await fetch(`${stack.url}/metrics`)).text())
    seen = match ? Number(match[1]) : undefined
    if (seen !== undefined && check(seen)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`metric ${pattern}: ${seen}, not what the test waits for`)
}
