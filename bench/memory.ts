/**
 * What memory each way of running the bot needs: the resident set (RSS) of the real entry points,
 * started with the command lines of package.json's scripts (so Node flags set there count), idle
 * and under load, against the fake Telegram and OpenAI. One command: `node bench/memory.ts`
 * (`npm run bench:memory`); `--only=embedded|api|worker` runs one scenario.
 *
 * - embedded: `npm start` on a new DATA_DIR (first start: the embedded Postgres is created),
 *   idle; stopped and started again on the same DATA_DIR, idle; then a burst of 300 private
 *   chats writing at once (LLM: first token after 0.5 s, 3 s of streaming), until all answered.
 * - api: `npm run start:api` on the real Postgres and Redis under the ingest load of
 *   `npm run bench` (autocannon, 50 connections, distinct realistic updates) for 20 s.
 * - worker: `npm run start:worker` with WORKER_CONCURRENCY=200 while 200 chats stream an answer
 *   at once (LLM: 15 s streams), fed by a `start:api` process.
 *
 * RSS is read from /proc/PID/status every 50 ms; "peak" is the kernel's high-water mark (VmHWM),
 * "idle" the median of the samples over the last 5 s of a 15 s quiet period. Needs Postgres
 * (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379, DB 6, flushed before and after).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type FakeOpenAI, startFakeOpenAI } from "../test/support/FakeOpenAI.ts"
import { type FakeTelegram, startFakeTelegram } from "../test/support/telegram/FakeTelegram.ts"
import {
  benchBotToken,
  benchOpenaiKey,
  botEnv,
  freePort,
  migrateDatabase,
  percentile,
  postWebhook,
  type Program,
  sharedStorage,
  sleep,
  startChild,
  startProgram,
  textUpdateBody
} from "./lib.ts"
import type { LoadFigures } from "./load.ts"

const only = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length)
const logDir = mkdtempSync(join(tmpdir(), "bench-memory-"))
const redisDb = 6
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024)
const log = (line: string) => process.stderr.write(`[memory] ${line}\n`)
const cleanups: Array<() => Promise<void>> = []

/** Starts a package.json script's program as operators do, sampling its RSS from the start; stopped on exit. */
const start = async (name: string, script: string, env: Record<string, string>, port?: number): Promise<Program> => {
  const program = await startProgram(name, script, env, port === undefined ? { logDir } : { logDir, port })
  cleanups.push(program.stop)
  return program
}

/** Median RSS over the last `ms` of samples. */
const settled = (program: Program, ms = 5_000) => {
  const samples = program.samples()
  const last = samples.at(-1)?.at ?? 0
  return percentile(samples.filter((s) => s.at >= last - ms).map((s) => s.rss), 50)
}
const maxOf = (program: Program) => Math.max(...program.samples().map((s) => s.rss))

const fakes = async (): Promise<{ telegram: FakeTelegram; openai: FakeOpenAI }> => {
  const telegram = await startFakeTelegram({ token: benchBotToken })
  const openai = await startFakeOpenAI({ apiKey: benchOpenaiKey })
  cleanups.push(async () => void (await Promise.all([telegram.close(), openai.close()])))
  return { telegram, openai }
}

const baseEnv = (port: number, f: { telegram: FakeTelegram; openai: FakeOpenAI }): Record<string, string> => ({
  ...botEnv(port, { telegramUrl: f.telegram.url, openaiUrl: f.openai.url }),
  RATE_LIMIT_LLM_PER_MINUTE: "1000"
})

/** Posts one update per chat to the webhook, `concurrency` at a time; returns how many got 200. */
const postChats = async (url: string, chats: number, firstId: number, concurrency = 50): Promise<number> => {
  let next = 0
  let ok = 0
  const lane = async () => {
    while (next < chats) {
      const n = firstId + next++
      if ((await postWebhook(url, textUpdateBody(n, { users: chats, userBase: 800_000_000 }))) === 200) ok++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  return ok
}

/** Waits (bounded) until `count` chats got a final sendMessage from the fake Telegram. */
const answered = async (telegram: FakeTelegram, count: number, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  const finals = () => new Set(telegram.calls.filter((c) => c.method === "sendMessage").map((c) => c.chatId)).size
  while (finals() < count && Date.now() < deadline) await sleep(200)
  return finals()
}

const rows: Array<[string, string, string]> = []
const row = (what: string, figure: number | string, target = "") => {
  rows.push([what, typeof figure === "number" ? `${mb(figure)} MB` : figure, target])
  log(`${what}: ${typeof figure === "number" ? `${mb(figure)} MB` : figure}`)
}

const embedded = async () => {
  const f = await fakes()
  const dataDir = mkdtempSync(join(tmpdir(), "bench-memory-data-"))
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }))
  const port = await freePort()
  const env = { ...baseEnv(port, f), DATA_DIR: dataDir }
  log("embedded: first start on a new DATA_DIR")
  const first = await start("embedded-first", "start", env, port)
  await sleep(15_000)
  row("embedded, first start (DATA_DIR created): peak", first.peak(), "<= 600 MB")
  row("embedded, first start: idle", settled(first), "<= 300 MB")
  await first.stop()
  log("embedded: start again on the same DATA_DIR")
  const again = await start("embedded", "start", env, port)
  row("embedded, start on an existing DATA_DIR: peak", again.peak(), "<= 600 MB")
  await sleep(15_000)
  row("embedded, idle", settled(again), "<= 300 MB")
  f.openai.setReply(() => ({ text: "A reply streamed over three seconds, ".repeat(8), firstTokenDelayMs: 500, chunkDelayMs: 3_000 / 36 }))
  again.mark()
  const chats = 300
  const accepted = await postChats(again.url, chats, 1)
  const done = await answered(f.telegram, chats, 180_000)
  row(`embedded, burst of ${chats} chats (${accepted} accepted, ${done} answered): max`, maxOf(again), "<= 600 MB")
  row("embedded, peak over its life", again.peak(), "<= 600 MB")
  await sleep(15_000)
  row("embedded, idle after the burst", settled(again), "")
  await again.stop()
}

const withSharedStorage = async (name: string) => {
  const storage = await sharedStorage(`bench_memory_${name}_${process.pid}`, redisDb)
  cleanups.push(storage.release)
  return storage.env
}

const migrate = (storage: Record<string, string>) => migrateDatabase(storage, logDir)

const api = async () => {
  const f = await fakes()
  const storage = await withSharedStorage("api")
  await migrate(storage)
  const port = await freePort()
  const program = await start("api", "start:api", { ...baseEnv(port, f), ...storage }, port)
  await sleep(10_000)
  row("api, idle", settled(program), "")
  const load = startChild("load", fileURLToPath(new URL("./load.ts", import.meta.url)), ["50"], { logDir })
  cleanups.push(() => load.stop())
  program.mark()
  load.send({ type: "run", url: program.url, seconds: 20, firstId: 1 })
  const figures = (await load.next("result", 60_000)).figures as LoadFigures
  row(`api, ingest load (${Math.round(figures.ok / figures.seconds)} req/s, ${figures.non2xx + figures.errors} errors): max`, maxOf(program), "<= 250 MB")
  row("api, peak over its life", program.peak(), "<= 250 MB")
  await program.stop()
}

const worker = async () => {
  const f = await fakes()
  const storage = await withSharedStorage("worker")
  await migrate(storage)
  const port = await freePort()
  const env = { ...baseEnv(port, f), ...storage, WORKER_CONCURRENCY: "200" }
  const apiProgram = await start("worker-api", "start:api", env, port)
  const program = await start("worker", "start:worker", { ...env, PORT: String(await freePort()) })
  await sleep(10_000)
  row("worker, idle", settled(program), "")
  const chats = 200
  f.openai.setReply(() => ({ text: "A reply streamed over fifteen seconds. ".repeat(20), firstTokenDelayMs: 500, chunkDelayMs: 15_000 / 100 }))
  program.mark()
  const accepted = await postChats(apiProgram.url, chats, 1)
  const done = await answered(f.telegram, chats, 180_000)
  row(`worker, ${chats} concurrent streaming turns (${accepted} accepted, ${done} answered): max`, maxOf(program), "<= 300 MB")
  row("worker, peak over its life", program.peak(), "<= 300 MB")
  await program.stop()
  await apiProgram.stop()
}

const main = async () => {
  log(`logs in ${logDir}`)
  const deadline = setTimeout(() => {
    log("the run took over 15 min: stopping")
    void shutdown(1)
  }, 15 * 60_000)
  for (const [name, scenario] of [["embedded", embedded], ["api", api], ["worker", worker]] as const) {
    if (only === undefined || only === name) await scenario()
  }
  clearTimeout(deadline)
  process.stdout.write(`\n| what (RSS) | measured | target |\n|---|---:|---|\n${rows.map((r) => `| ${r.join(" | ")} |`).join("\n")}\n`)
}

const shutdown = async (code: number) => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined)
  process.exit(code)
}
process.on("SIGINT", () => void shutdown(130))
main().then(() => shutdown(0), (error: unknown) => {
  log(`failed: ${String(error)}`)
  void shutdown(1)
})
