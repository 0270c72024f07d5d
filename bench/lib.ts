/**
 * Helpers shared by the benchmark's processes: realistic Telegram updates, percentiles, per-process
 * CPU time and memory from /proc, databases on the real Postgres, child processes driven over
 * IPC, and the real programs (package.json's scripts) started as operators start them.
 */
import { type ChildProcess, fork, spawn } from "node:child_process"
import { createWriteStream, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { type AddressInfo, createServer } from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import pg from "pg"

export const pgHost = process.env.PGHOST ?? "127.0.0.1"
export const pgPort = Number(process.env.PGPORT ?? 5432)
export const redisHost = "127.0.0.1"
export const redisPort = 6379
export const webhookSecret = "bench_secret-0123456789abcdef0123456789"

// ---------------------------------------------------------------------------------------------
// Updates

const firstNames = ["Anna", "Boris", "Chloé", "Dmitri", "Elif", "Farah", "Giulia", "Hiro", "Ivan", "Jana", "Kofi", "Lena"]
const lastNames = ["Ivanova", "Müller", "Rossi", "Tanaka", "Okafor", "Nguyen", "García", "Smirnov", undefined, undefined]
const languages = ["en", "ru", "de", "it", "es", "uk", "fr", "ja", "pt-br", undefined]
const phrases = [
  "Can you explain how a hash map works?",
  "Write a short poem about the sea in spring",
  "What is the difference between TCP and UDP?",
  "Переведи на английский: я опаздываю на встречу",
  "Give me three ideas for dinner with rice and beans",
  "Summarise the plot of Hamlet in two sentences 🎭",
  "How do I centre a div?",
  "Explain the CAP theorem like I'm five"
]

/** Users (and their private chats) are spread over this many ids. */
export const distinctUsers = 20_000

/**
 * The body Telegram posts for a private text message, as a JSON string. `n` makes it unique:
 * update_id, message_id and the text (which carries a `#n` marker) all derive from it.
 */
export const textUpdateBody = (n: number, options: { readonly users?: number; readonly userBase?: number } = {}): string => {
  const users = options.users ?? distinctUsers
  const slot = (n * 7_919) % users // a stride, so consecutive updates come from different users
  const id = (options.userBase ?? 500_000_000) + slot
  const first = firstNames[slot % firstNames.length] ?? "Tester"
  const last = lastNames[slot % lastNames.length]
  const language = languages[slot % languages.length]
  const user: Record<string, unknown> = { id, is_bot: false, first_name: first }
  if (last !== undefined) user.last_name = last
  user.username = `bench_user_${slot}`
  if (language !== undefined) user.language_code = language
  const chat: Record<string, unknown> = { id, first_name: first, username: `bench_user_${slot}`, type: "private" }
  if (last !== undefined) chat.last_name = last
  return JSON.stringify({
    update_id: n,
    message: {
      message_id: 1_000 + n,
      from: user,
      chat,
      date: Math.floor(Date.now() / 1000),
      text: `${phrases[n % phrases.length] ?? "hello"} #${n}`
    }
  })
}

/** The `#n` marker that textUpdateBody puts at the end of the text. */
export const markerOf = (text: string): number | undefined => {
  const match = /#(\d+)$/.exec(text)
  return match ? Number(match[1]) : undefined
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile of unsorted values; NaN when empty. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] ?? Number.NaN
}

export interface Bucket {
  /** Upper bound in seconds (Infinity for +Inf). */
  readonly le: number
  /** Cumulative count. */
  readonly count: number
}

/** The cumulative buckets of one Prometheus histogram (all label sets added up). */
export const histogramBuckets = (text: string, name: string): Array<Bucket> => {
  const byLe = new Map<number, number>()
  const line = new RegExp(`^${name}_bucket\\{([^}]*)\\}\\s+(\\S+)`)
  for (const row of text.split("\n")) {
    const match = line.exec(row)
    if (!match) continue
    const le = /le="([^"]+)"/.exec(match[1] ?? "")?.[1]
    if (le === undefined) continue
    const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le)
    byLe.set(bound, (byLe.get(bound) ?? 0) + Number(match[2]))
  }
  return [...byLe.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le)
}

/** Quantile estimated from cumulative buckets, interpolating linearly inside a bucket (like histogram_quantile). */
export const bucketQuantile = (buckets: ReadonlyArray<Bucket>, q: number): number => {
  const total = buckets.at(-1)?.count ?? 0
  if (total === 0) return Number.NaN
  const target = q * total
  let previousLe = 0
  let previousCount = 0
  for (const bucket of buckets) {
    if (bucket.count >= target) {
      if (!Number.isFinite(bucket.le)) return previousLe
      const inBucket = bucket.count - previousCount
      return inBucket === 0 ? bucket.le : previousLe + ((bucket.le - previousLe) * (target - previousCount)) / inBucket
    }
    previousLe = bucket.le
    previousCount = bucket.count
  }
  return previousLe
}

// ---------------------------------------------------------------------------------------------
// CPU time of processes, from /proc (user + system, clock ticks of 10 ms)

const ticksPerSecond = 100

const cpuSecondsOf = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
  } catch {
    return 0
  }
}

const cmdlineOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")
  } catch {
    return ""
  }
}

const commOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim()
  } catch {
    return ""
  }
}

export type CpuGroups = Readonly<Record<string, number>>

/**
 * CPU seconds so far of: the given processes by name, redis-server, and Postgres (its background
 * processes plus the client backends of `database`; backends of other databases are left out).
 */
export const cpuSnapshot = (processes: Readonly<Record<string, number | undefined>>, database: string): CpuGroups => {
  const groups: Record<string, number> = {}
  for (const [name, pid] of Object.entries(processes)) if (pid !== undefined) groups[name] = cpuSecondsOf(pid)
  let redis = 0
  let postgres = 0
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    const comm = commOf(pid)
    if (comm === "redis-server") redis += cpuSecondsOf(pid)
    else if (comm === "postgres") {
      const cmdline = cmdlineOf(pid)
      const backend = /\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]/.test(cmdline)
      if (!backend || cmdline.includes(` ${database} `)) postgres += cpuSecondsOf(pid)
    }
  }
  groups.redis = redis
  groups.postgres = postgres
  return groups
}

/**
 * CPU seconds that processes of the whole machine (all cores) have run so far, from /proc/stat:
 * user + nice + system (interrupt time, which no process is charged with, is left out).
 */
export const machineBusySeconds = (): number => {
  const first = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? ""
  const [, user, nice, system] = first.trim().split(/\s+/).map(Number)
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0)) / ticksPerSecond
}

/**
 * CPU% (of one core) used during an interval by processes outside the given groups: the other
 * work on the machine, i.e. the noise of the measurement.
 */
export const otherCpuPercent = (
  before: { readonly groups: CpuGroups; readonly busy: number; readonly at: number },
  after: { readonly groups: CpuGroups; readonly busy: number; readonly at: number }
): number => {
  const ours = Object.values(cpuDelta(before.groups, after.groups)).reduce((a, b) => a + b, 0)
  const seconds = (after.at - before.at) / 1000
  return seconds <= 0 ? Number.NaN : (100 * Math.max(0, after.busy - before.busy - ours)) / seconds
}

export const cpuDelta = (before: CpuGroups, after: CpuGroups): CpuGroups => {
  const delta: Record<string, number> = {}
  for (const [name, value] of Object.entries(after)) delta[name] = value - (before[name] ?? 0)
  return delta
}

// ---------------------------------------------------------------------------------------------
// Postgres databases

const adminQuery = async (sql: string): Promise<void> => {
  const client = new pg.Client({ host: pgHost, port: pgPort, user: "postgres", database: "postgres" })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

/** Creates an empty database (dropping a leftover of the same name first). */
export const createDatabase = async (name: string): Promise<void> => {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`)
  await adminQuery(`drop database if exists ${name} with (force)`)
  await adminQuery(`create database ${name}`)
}

export const dropDatabase = async (name: string): Promise<void> => {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`)
  await adminQuery(`drop database if exists ${name} with (force)`)
}

export interface DbWork {
  readonly commits: number
  readonly rollbacks: number
  readonly inserted: number
  readonly updated: number
  readonly returned: number
  /** Redis commands processed by the whole server (all databases). */
  readonly redisCommands: number
}

/**
 * Work counters: Postgres transactions and rows of one database (pg_stat_database, which
 * Postgres 15 flushes at most once a second: read it after a pause), and Redis commands.
 */
export const dbWork = async (database: string, redisInfo: () => Promise<string>): Promise<DbWork> => {
  const client = new pg.Client({ host: pgHost, port: pgPort, user: "postgres", database: "postgres" })
  await client.connect()
  try {
    await client.query("select pg_stat_clear_snapshot()")
    const row = (await client.query(
      "select xact_commit, xact_rollback, tup_inserted, tup_updated, tup_returned from pg_stat_database where datname = $1",
      [database]
    )).rows[0] as Record<string, string> | undefined
    const info = await redisInfo()
    const commands = Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? Number.NaN)
    return {
      commits: Number(row?.xact_commit ?? 0),
      rollbacks: Number(row?.xact_rollback ?? 0),
      inserted: Number(row?.tup_inserted ?? 0),
      updated: Number(row?.tup_updated ?? 0),
      returned: Number(row?.tup_returned ?? 0),
      redisCommands: commands
    }
  } finally {
    await client.end()
  }
}

export const databaseUrl = (name: string) => `postgres://postgres@${pgHost}:${pgPort}/${name}`

// ---------------------------------------------------------------------------------------------
// Child processes over IPC

export type Message = { readonly type: string; readonly [key: string]: unknown }

export interface Child {
  readonly name: string
  readonly pid: number
  readonly process: ChildProcess
  readonly logFile: string
  /** Resolves with the next message of this type (bounded by timeoutMs). */
  readonly next: (type: string, timeoutMs: number) => Promise<Message>
  readonly send: (message: Message) => void
  /** Asks it to stop, then SIGKILLs it (by its pid) if it has not exited within timeoutMs. */
  readonly stop: (timeoutMs?: number) => Promise<void>
}

/**
 * Forks a TypeScript file with the same Node (24) and IPC; its stdout and stderr go to a log
 * file. Messages are buffered until asked for, so none is lost between two awaits.
 */
export const startChild = (
  name: string,
  file: string,
  args: ReadonlyArray<string>,
  options: { readonly logDir: string; readonly execArgv?: ReadonlyArray<string>; readonly env?: NodeJS.ProcessEnv }
): Child => {
  const logFile = join(options.logDir, `${name}.log`)
  const log = createWriteStream(logFile)
  const child = fork(file, [...args], {
    execArgv: [...(options.execArgv ?? [])],
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe", "ipc"]
  })
  child.stdout?.pipe(log, { end: false })
  child.stderr?.pipe(log, { end: false })
  const inbox: Array<Message> = []
  const waiters: Array<{ readonly type: string; readonly resolve: (m: Message) => void }> = []
  let exited = false
  const exitedPromise = new Promise<void>((resolve) => child.once("exit", () => {
    exited = true
    resolve()
  }))
  child.on("message", (raw) => {
    const message = raw as Message
    const waiter = waiters.findIndex((w) => w.type === message.type)
    if (waiter >= 0) waiters.splice(waiter, 1)[0]?.resolve(message)
    else inbox.push(message)
  })
  if (child.pid === undefined) throw new Error(`could not start ${name}`)
  const pid = child.pid
  return {
    name,
    pid,
    process: child,
    logFile,
    send: (message) => {
      if (!exited && child.connected) child.send(message)
    },
    next: (type, timeoutMs) => {
      const queued = inbox.findIndex((m) => m.type === type)
      if (queued >= 0) return Promise.resolve(inbox.splice(queued, 1)[0]!)
      return new Promise<Message>((resolve, reject) => {
        const timer = setTimeout(() => {
          const index = waiters.indexOf(waiter)
          if (index >= 0) waiters.splice(index, 1)
          reject(new Error(`${name}: no "${type}" message within ${timeoutMs} ms (log: ${logFile})`))
        }, timeoutMs)
        const waiter = {
          type,
          resolve: (m: Message) => {
            clearTimeout(timer)
            resolve(m)
          }
        }
        waiters.push(waiter)
        void exitedPromise.then(() => {
          if (waiters.includes(waiter)) {
            clearTimeout(timer)
            waiters.splice(waiters.indexOf(waiter), 1)
            reject(new Error(`${name} exited before sending "${type}" (log: ${logFile})`))
          }
        })
      })
    },
    stop: async (timeoutMs = 15_000) => {
      if (exited) {
        log.end()
        return
      }
      if (child.connected) child.send({ type: "stop" })
      else process.kill(pid, "SIGTERM")
      const timer = setTimeout(() => {
        if (!exited) process.kill(pid, "SIGKILL")
      }, timeoutMs)
      await exitedPromise
      clearTimeout(timer)
      log.end()
    }
  }
}

/** In a child: waits for the parent's messages of one type. */
export const onParentMessage = (type: string, handler: (message: Message) => void | Promise<void>) => {
  process.on("message", (raw) => {
    const message = raw as Message
    if (message.type === type) void handler(message)
  })
}

export const toParent = (message: Message) => {
  process.send?.(message)
}

/**
 * In a child: CPU-profiles a window chosen by the parent (not start-up). { type: "profile-start" }
 * answers "profile-started"; { type: "profile-stop", file } writes a .cpuprofile and answers
 * "profile-written".
 */
export const serveProfiler = () => {
  const session = new Session()
  onParentMessage("profile-start", async () => {
    session.connect()
    await session.post("Profiler.enable")
    await session.post("Profiler.setSamplingInterval", { interval: 250 })
    await session.post("Profiler.start")
    toParent({ type: "profile-started" })
  })
  onParentMessage("profile-stop", async (message) => {
    const { profile } = await session.post("Profiler.stop")
    writeFileSync(String(message.file), JSON.stringify(profile))
    session.disconnect()
    toParent({ type: "profile-written" })
  })
}

/**
 * The Node flags of a package.json script (`node [flags] file`), so that benchmarks run the
 * programs as operators do (heap sizes count for memory and speed alike).
 */
export const nodeFlagsOf = (script: string): Array<string> => {
  const scripts = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { scripts: Record<string, string> }).scripts
  const [command, ...args] = (scripts[script] ?? "").split(/\s+/)
  if (command !== "node") throw new Error(`script ${script} does not run node`)
  return args.filter((arg) => arg.startsWith("--"))
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// The real programs, as child processes (package.json's scripts, their Node flags included)

const root = fileURLToPath(new URL("..", import.meta.url))

/** The entry point each package.json script runs. */
export const entryPoints: Readonly<Record<string, string>> = {
  start: "src/main/all.ts",
  "start:api": "src/main/api.ts",
  "start:worker": "src/main/worker.ts",
  migrate: "src/main/migrate.ts"
}

/** The bot token and OpenAI key the benchmarks give the programs and the fakes. */
export const benchBotToken = "123456:TEST-TOKEN"
export const benchOpenaiKey = "sk-bench-key"

/**
 * A memory field of /proc/PID/status in bytes (VmRSS: the resident set now; VmHWM: its
 * high-water mark over the process's life); 0 once the process is gone.
 */
export const procStatusBytes = (pid: number, field: "VmRSS" | "VmHWM"): number => {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match ? Number(match[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** A port nobody listens on at the moment, on 127.0.0.1. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

export interface RssSample {
  readonly at: number
  readonly rss: number
}

export interface Program {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  /** http://127.0.0.1:PORT (port 0 when it serves no HTTP). */
  readonly url: string
  readonly logFile: string
  /** RSS samples (bytes) since the last `mark()`, with their times (ms). */
  readonly samples: () => ReadonlyArray<RssSample>
  readonly mark: () => void
  /** The kernel's RSS high-water mark for the process's life, bytes. */
  readonly peak: () => number
  /** Resolves with the exit code (null: killed by a signal). */
  readonly exited: Promise<number | null>
  /** SIGTERM, then SIGKILL after 20 s; idempotent. */
  readonly stop: () => Promise<void>
}

/** Polls GET /ready until 200 (bounded); fails early when the program exits. */
export const waitReady = async (url: string, timeoutMs: number, program?: Pick<Program, "name" | "child" | "logFile">) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (program !== undefined && program.child.exitCode !== null) {
      throw new Error(`${program.name} exited with code ${program.child.exitCode} before it was ready (log: ${program.logFile})`)
    }
    const ok = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status === 200, () => false)
    if (ok) return
    await sleep(100)
  }
  throw new Error(`${url}/ready not 200 within ${timeoutMs} ms${program === undefined ? "" : ` (log: ${program.logFile})`}`)
}

/**
 * Starts a package.json script's program as operators do (`node [its flags] entry`), its output
 * in `logDir/name.log`, sampling its RSS every `sampleEveryMs` (50) from the start. With `port`,
 * waits (bounded by `readyTimeoutMs`, 120 s) for GET /ready; a program that is not ready is stopped.
 */
export const startProgram = async (
  name: string,
  script: string,
  env: Readonly<Record<string, string>>,
  options: { readonly logDir: string; readonly port?: number; readonly sampleEveryMs?: number; readonly readyTimeoutMs?: number }
): Promise<Program> => {
  const entry = entryPoints[script]
  if (entry === undefined) throw new Error(`no entry point for script ${script}`)
  const logFile = join(options.logDir, `${name}.log`)
  const log = createWriteStream(logFile)
  const child = spawn(process.execPath, [...nodeFlagsOf(script), entry], { cwd: root, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] })
  child.stdout.pipe(log)
  child.stderr.pipe(log)
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${name}`)
  let samples: Array<RssSample> = []
  const timer = setInterval(() => samples.push({ at: Date.now(), rss: procStatusBytes(pid, "VmRSS") }), options.sampleEveryMs ?? 50)
  let peak = 0
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const program: Program = {
    name,
    child,
    pid,
    url: `http://127.0.0.1:${options.port ?? 0}`,
    logFile,
    samples: () => samples,
    mark: () => {
      samples = []
    },
    peak: () => Math.max(peak, procStatusBytes(pid, "VmHWM")),
    exited,
    stop: async () => {
      peak = program.peak()
      clearInterval(timer)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
      const killer = setTimeout(() => child.kill("SIGKILL"), 20_000)
      await exited
      clearTimeout(killer)
    }
  }
  if (options.port !== undefined) {
    await waitReady(program.url, options.readyTimeoutMs ?? 120_000, program).catch(async (error: unknown) => {
      await program.stop()
      throw error
    })
  }
  return program
}

/** `npm run migrate` on the given storage, to its end (bounded); fails unless it exits 0. */
export const migrateDatabase = async (env: Readonly<Record<string, string>>, logDir: string, timeoutMs = 120_000) => {
  const program = await startProgram("migrate", "migrate", { ...env, LOG_LEVEL: "Error" }, { logDir })
  const timer = setTimeout(() => void program.stop(), timeoutMs)
  const code = await program.exited
  clearTimeout(timer)
  await program.stop()
  if (code !== 0) throw new Error(`migrate exited with ${code} (log: ${program.logFile})`)
}

/** The settings every benchmark gives the programs: webhook mode on 127.0.0.1, the fakes, quiet logs. */
export const botEnv = (port: number, fakes: { readonly telegramUrl: string; readonly openaiUrl: string }): Record<string, string> => ({
  PORT: String(port),
  PUBLIC_URL: "https://bot.example.com",
  HOST: "127.0.0.1",
  TELEGRAM_BOT_TOKEN: benchBotToken,
  TELEGRAM_WEBHOOK_SECRET: webhookSecret,
  TELEGRAM_API_ROOT: fakes.telegramUrl,
  OPENAI_API_KEY: benchOpenaiKey,
  OPENAI_BASE_URL: `${fakes.openaiUrl}/v1`,
  OPENAI_MODEL: "gpt-bench",
  LOG_LEVEL: "Error",
  SHUTDOWN_GRACE_SECONDS: "5"
})

/**
 * A new database and a flushed Redis DB for programs that run apart (start:api, start:worker);
 * `release` drops the one and flushes the other. `redis` stays connected until then.
 */
export const sharedStorage = async (database: string, redisDb: number) => {
  await createDatabase(database)
  const redis = new Redis({ host: redisHost, port: redisPort, db: redisDb, maxRetriesPerRequest: 1 })
  await redis.flushdb()
  return {
    env: { DATABASE_URL: databaseUrl(database), REDIS_URL: `redis://${redisHost}:${redisPort}/${redisDb}` } as Record<string, string>,
    redis,
    release: async () => {
      await redis.flushdb().catch(() => undefined)
      redis.disconnect()
      await dropDatabase(database)
    }
  }
}

/** POSTs one update body to the program's webhook with the secret; the HTTP status (0: no answer). */
export const postWebhook = async (url: string, body: string, timeoutMs = 10_000): Promise<number> => {
  const response = await fetch(`${url}/telegram/webhook`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": webhookSecret },
    body,
    signal: AbortSignal.timeout(timeoutMs)
  }).catch(() => undefined)
  await response?.arrayBuffer().catch(() => undefined)
  return response?.status ?? 0
}
