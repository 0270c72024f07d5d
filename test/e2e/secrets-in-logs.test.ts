/**
 * Every secret an operator configures stays out of the program's output, on the paths where
 * errors are logged: Telegram 429, 5xx and a dropped connection, OpenAI 401 (quoting the key)
 * and 5xx, Postgres and Redis away. The program runs as an operator runs it (`npm start`'s
 * entry point in its own process, LOG_LEVEL=All) and everything it writes is read.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { FakeLemonSqueezy } from "../support/FakeLemonSqueezy.ts"
import { startFakeOpenAI, type FakeOpenAI } from "../support/FakeOpenAI.ts"
import { lemonFixture, lemonSignature, lemonWire } from "../support/fixtures.ts"
import { ProgramProcess } from "../support/ProgramProcess.ts"
import { createDatabase, freePort, leaseRedisDb, queryDatabase, waitForStatus } from "../support/Stack.ts"
import { TcpProxy } from "../support/TcpProxy.ts"
import { type FakeTelegram, startFakeTelegram, textMessageUpdate } from "../support/telegram/FakeTelegram.ts"

const botToken = "987654:LOGTEST-bot-token-secret-half"
const secrets = {
  botToken,
  botTokenSecretHalf: botToken.split(":")[1]!,
  openaiKey: "sk-logtest-openai-key-0123456789",
  webhookSecret: "logtest_webhook_secret_0123456789abcdef",
  databasePassword: "pg-password-logtest",
  redisPassword: "redis-password-logtest",
  metricsToken: "metrics-token-logtest-0123456789abcdef",
  lemonApiKey: "lemon-api-key-logtest",
  lemonWebhookSecret: "lemon-webhook-secret-logtest"
}

describe("secrets in the program's output", () => {
  let telegram: FakeTelegram
  let openai: FakeOpenAI
  let lemonSqueezy: FakeLemonSqueezy
  let postgres: TcpProxy
  let redis: TcpProxy
  let redisLease: Awaited<ReturnType<typeof leaseRedisDb>>
  let program: ProgramProcess
  const database = createDatabase()
  const query = (sql: string) => queryDatabase(database.name, sql)
  let url = ""

  const post = (updateId: number, text: string) =>
    fetch(`${url}/telegram/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secrets.webhookSecret },
      body: JSON.stringify({ update_id: updateId, ...textMessageUpdate({ chatId: updateId, text }) })
    })

  /** Posts until the webhook answers 200 (Telegram's redelivery after a 503). */
  const deliver = async (updateId: number, text: string) => {
    const deadline = Date.now() + 20_000
    while ((await post(updateId, text)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`update ${updateId} never accepted`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  beforeAll(async () => {
    telegram = await startFakeTelegram({ token: botToken })
    openai = await startFakeOpenAI({ apiKey: secrets.openaiKey })
    lemonSqueezy = await FakeLemonSqueezy.start(secrets.lemonApiKey)
    postgres = await TcpProxy.start(Number(process.env.PGPORT ?? 5432), process.env.PGHOST ?? "127.0.0.1")
    redis = await TcpProxy.start(6379)
    redisLease = await leaseRedisDb()
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    program = new ProgramProcess("all", {
      PORT: String(port),
      // Telegram only takes https webhooks; the test posts to the program itself.
      PUBLIC_URL: "https://bot.example.com",
      HOST: "127.0.0.1",
      TELEGRAM_BOT_TOKEN: botToken,
      TELEGRAM_WEBHOOK_SECRET: secrets.webhookSecret,
      TELEGRAM_API_ROOT: telegram.url,
      OPENAI_API_KEY: secrets.openaiKey,
      OPENAI_BASE_URL: `${openai.url}/v1`,
      DATABASE_URL: `postgres://postgres:${secrets.databasePassword}@127.0.0.1:${postgres.port}/${database.name}`,
      REDIS_URL: `redis://:${secrets.redisPassword}@127.0.0.1:${redis.port}/${redisLease.db}`,
      METRICS_TOKEN: secrets.metricsToken,
      LEMON_API_KEY: secrets.lemonApiKey,
      LEMON_API_URL: lemonSqueezy.url,
      LEMON_STORE_ID: "1",
      LEMON_VARIANT_PROMO: "11",
      LEMON_VARIANT_STANDARD: "12",
      LEMON_WEBHOOK_SECRET: secrets.lemonWebhookSecret,
      LOG_LEVEL: "All",
      SWEEP_INTERVAL_SECONDS: "1"
    })
    const deadline = Date.now() + 30_000
    while ((await fetch(`${url}/ready`).then((r) => r.status, () => 0)) !== 200) {
      if (Date.now() > deadline) throw new Error(`the program did not get ready:\n${program.output}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }, 60_000)

  afterAll(async () => {
    program.kill("SIGKILL")
    await program.exited
    await Promise.all([telegram.close(), openai.close(), lemonSqueezy.close(), postgres.close(), redis.close()])
    await redisLease.release()
    database.drop()
  })

  it("logs each failure with its cause and never a token, key, password or secret", async () => {
    const stack = { query }
    // Telegram: a 429, then a 5xx that outlasts a turn's retries, then a dropped connection.
    telegram.failNext("sendMessage", { code: 429, retryAfter: 1 })
    await deliver(1, "telegram 429")
    await waitForStatus(stack, 1, "answered", 20_000)
    telegram.failNext("sendMessage", { code: 502 }, 6)
    await deliver(2, "telegram 5xx")
    await waitForStatus(stack, 2, "answered", 40_000)
    telegram.failNext("sendMessage", { drop: true })
    await deliver(3, "telegram away")
    await waitForStatus(stack, 3, "answered", 20_000)
    // OpenAI: a revoked key (its 401 quotes the key), then 5xx past the retries.
    openai.failNext({ status: 401 })
    await deliver(4, "openai 401")
    await waitForStatus(stack, 4, "failed")
    openai.failNext({ status: 500 }, 5)
    await deliver(5, "openai 5xx")
    await waitForStatus(stack, 5, "failed", 30_000)
    // Postgres, then Redis, away at webhook time: 503, then Telegram's retry is taken.
    postgres.cut()
    expect((await post(6, "postgres away")).status).toBe(503)
    postgres.restore()
    await deliver(6, "postgres away")
    redis.cut()
    expect((await post(7, "redis away")).status).toBe(503)
    redis.restore()
    await deliver(7, "redis away")
    await waitForStatus(stack, 7, "answered", 20_000)
    // LemonSqueezy: its API away when a checkout is made, a webhook signed wrong, one signed right.
    lemonSqueezy.failNext({ status: 500 }, 4, "POST /v1/checkouts")
    await deliver(8, "/subscribe")
    await waitForStatus(stack, 8, "answered", 20_000)
    const event = lemonWire(lemonFixture("subscription_created-time8-product"))
    const webhook = (signature: string) =>
      fetch(`${url}/lemonsqueezy/webhook`, { method: "POST", headers: { "x-signature": signature }, body: event })
    expect((await webhook(lemonSignature(event, "wrong-secret"))).status).toBe(401)
    expect((await webhook(lemonSignature(event, secrets.lemonWebhookSecret))).status).toBe(200)
    // The operator's scrape.
    expect((await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${secrets.metricsToken}` } })).status).toBe(200)

    program.kill("SIGTERM")
    expect(await program.exited).toBe(0)
    const output = program.output
    // No secret, whole or in part...
    for (const [name, secret] of Object.entries(secrets)) {
      expect(output.includes(secret), `${name} in the output`).toBe(false)
    }
    // ...while the failures were logged, with what went wrong.
    // (a fixed sentence as the message, the cause in a field of its own)
    expect(output).toMatch(/"level":"INFO","message":"reply postponed","error":"Telegram: Bad Gateway"/)
    expect(output).toMatch(/"message":"reply postponed","error":"Telegram: Network request for 'sendMessage' failed!/)
    // The LLM server's 401 quotes the key's start and end ("sk-logte****...6789"): its words are
    // never kept, only the status, its error code and a fixed description.
    expect(output).toMatch(/"level":"ERROR","message":"the LLM server refuses the API key \(OPENAI_API_KEY\)","error":"401 invalid_api_key: the LLM server refused the API key \(OPENAI_API_KEY\)"/)
    expect(output.includes(secrets.openaiKey.slice(0, 8))).toBe(false)
    // Nor in the database, where the failed turn's error is stored.
    expect(query("select error from messages where update_id = 4")).toBe("401 invalid_api_key: the LLM server refused the API key (OPENAI_API_KEY)")
    expect(query(`select count(*) from messages where error like '%${secrets.openaiKey.slice(0, 8)}%'`)).toBe("0")
    expect(output).toMatch(/"level":"WARN","message":"chat turn failed","error":"500 /)
    expect(output).toMatch(/"level":"WARN","message":"webhook refused: storage or queue unavailable","error":"database: /)
    expect(output).toMatch(/"level":"WARN","message":"webhook refused: storage or queue unavailable","error":"Redis: /)
    expect(output).toMatch(/"level":"WARN","message":"no checkout for the user","error":"LemonSqueezy 500: /)
    expect(output).toMatch(/"message":"LemonSqueezy event kept for the operator, not applied/)
  }, 180_000)
})
