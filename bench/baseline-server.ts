/**
 * The baseline: what a naive webhook does per request, on plain node:http. Check the secret,
 * read and parse the body, one Redis rate-limit call (Lua INCR + PEXPIRE), one `pg` insert of the
 * update, one BullMQ `queue.add` of the chat's wake-up, then 200. Nothing is batched.
 *
 * Run by bench/webhook.ts as a child: argv = port, database name, Redis DB index, queue name.
 * It says { type: "ready" } when listening, answers { type: "cpu" }, and exits on { type: "stop" }.
 */
import { Queue } from "bullmq"
import { Redis } from "ioredis"
import { createHash, timingSafeEqual } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import pg from "pg"
import { databaseUrl, onParentMessage, redisHost, redisPort, serveProfiler, toParent, webhookSecret } from "./lib.ts"

const [portArg, database, redisDbArg, queueName] = process.argv.slice(2)
if (portArg === undefined || database === undefined || redisDbArg === undefined || queueName === undefined) {
  throw new Error("usage: baseline-server.ts PORT DATABASE REDIS_DB QUEUE")
}
const maxBodyBytes = 1_048_576
const userMessagesPerMinute = 20
const windowMs = 60_000

const pool = new pg.Pool({ connectionString: databaseUrl(database), max: 20 })
await pool.query(`
  create table if not exists telegram_updates (
    update_id bigint primary key,
    chat_id bigint,
    user_id bigint,
    text text,
    payload jsonb not null,
    over_limit boolean not null default false,
    received_at timestamptz not null default now()
  )`)

const redis = new Redis({ host: redisHost, port: redisPort, db: Number(redisDbArg), maxRetriesPerRequest: 1 })
redis.defineCommand("rateLimit", {
  numberOfKeys: 1,
  lua: `
    local count = redis.call('incr', KEYS[1])
    if count == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end
    return count`
})
const rateLimit = (key: string): Promise<number> =>
  (redis as unknown as { rateLimit: (key: string, windowMs: number) => Promise<number> }).rateLimit(key, windowMs)

const queue = new Queue<{ readonly chatId: number; readonly enqueuedAt: number }>(queueName, {
  connection: redis,
  defaultJobOptions: { attempts: 5, backoff: { type: "exponential", delay: 1_000 }, removeOnComplete: true, removeOnFail: { count: 1_000 } }
})
await queue.waitUntilReady()

const expected = createHash("sha256").update(webhookSecret).digest()
const sameSecret = (given: string | string[] | undefined) =>
  typeof given === "string" && timingSafeEqual(expected, createHash("sha256").update(given).digest())

const end = (res: ServerResponse, status: number) => {
  res.writeHead(status, { "content-length": 0 })
  res.end()
}

const readBody = (req: IncomingMessage): Promise<string | undefined> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size <= maxBodyBytes) chunks.push(chunk)
    })
    req.on("end", () => resolve(size > maxBodyBytes ? undefined : Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

interface Update {
  readonly update_id: number
  readonly message?: {
    readonly chat?: { readonly id?: number }
    readonly from?: { readonly id?: number }
    readonly text?: string
  }
}

const handle = async (req: IncomingMessage, res: ServerResponse) => {
  if (req.method !== "POST" || req.url !== "/telegram/webhook") return end(res, 404)
  if (!sameSecret(req.headers["x-telegram-bot-api-secret-token"])) return end(res, 401)
  const body = await readBody(req)
  if (body === undefined) return end(res, 413)
  let update: Update
  try {
    update = JSON.parse(body) as Update
  } catch {
    return end(res, 400)
  }
  if (!Number.isInteger(update.update_id)) return end(res, 400)
  const chatId = update.message?.chat?.id
  const userId = update.message?.from?.id
  const text = update.message?.text
  try {
    const count = userId === undefined ? 0 : await rateLimit(`bench:rate:user:${userId}`)
    await pool.query(
      `insert into telegram_updates (update_id, chat_id, user_id, text, payload, over_limit)
       values ($1, $2, $3, $4, $5, $6) on conflict (update_id) do nothing`,
      [update.update_id, chatId ?? null, userId ?? null, text ?? null, body, count > userMessagesPerMinute]
    )
    if (chatId !== undefined && text !== undefined) await queue.add("wake", { chatId, enqueuedAt: Date.now() })
    end(res, 200)
  } catch {
    end(res, 503)
  }
}

const server = createServer((req, res) => {
  handle(req, res).catch(() => end(res, 500))
})
server.keepAliveTimeout = 30_000
await new Promise<void>((resolve) => server.listen(Number(portArg), "127.0.0.1", resolve))
toParent({ type: "ready" })

onParentMessage("cpu", () => {
  toParent({ type: "cpu", usage: process.cpuUsage(), rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed })
})
serveProfiler()
onParentMessage("stop", async () => {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeAllConnections()
  await closed
  await queue.close()
  await redis.quit()
  await pool.end()
  process.exit(0)
})
// The parent went away without saying stop: do not outlive it.
process.on("disconnect", () => process.exit(0))
