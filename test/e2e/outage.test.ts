import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import { type Stack, startStack, waitForStatus } from "../support/Stack.ts"

describe("Postgres or Redis away at webhook time", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.stop())

  it("answers 503 while Postgres is away, then accepts Telegram's retry and answers once", async () => {
    const update = { update_id: 3001, ...textMessageUpdate({ chatId: 3001, text: "during a database outage" }) }
    stack.postgres!.cut()
    try {
      expect((await stack.post(update)).status).toBe(503)
    } finally {
      stack.postgres!.restore()
    }
    expect(stack.query("select count(*) from telegram_updates where update_id = 3001")).toBe("0")
    expect((await stack.post(update)).status).toBe(200)
    await waitForStatus(stack, 3001, "answered")
    expect(stack.telegram.messages(3001).map((m) => m.text)).toEqual(["Echo: during a database outage"])
  })

  it("answers 503 while Redis is away, then accepts the retry and answers once", async () => {
    const update = { update_id: 3002, ...textMessageUpdate({ chatId: 3002, text: "during a redis outage" }) }
    stack.redis!.cut()
    try {
      expect((await stack.post(update)).status).toBe(503)
    } finally {
      stack.redis!.restore()
    }
    // ioredis reconnects by itself; Telegram keeps retrying until it does.
    const deadline = Date.now() + 10_000
    let status = 0
    while (Date.now() < deadline && status !== 200) {
      status = (await stack.post(update)).status
      if (status !== 200) await new Promise((r) => setTimeout(r, 200))
    }
    expect(status).toBe(200)
    await waitForStatus(stack, 3002, "answered")
    expect(stack.telegram.messages(3002).map((m) => m.text)).toEqual(["Echo: during a redis outage"])
  })

  it("answers mail that was committed but never woken (the sweeper is the outbox)", async () => {
    // As if the process died between the commit and the enqueue.
    stack.query(`
      insert into telegram_updates (update_id, kind) values (3003, 'Text');
      insert into chats (id, type) values (3003, 'private');
      insert into users (id, first_name) values (3003, 'Ada');
      insert into messages (update_id, chat_id, user_id, telegram_message_id, text)
        values (3003, 3003, 3003, 1, 'lost wake-up')`)
    await waitForStatus(stack, 3003, "answered", 10_000)
    expect(stack.telegram.messages(3003).map((m) => m.text)).toEqual(["Echo: lost wake-up"])
  })

  it("leaves a chat whose turn is still working alone: one wake-up for a turn that outlasts several sweeps", async () => {
    const wakeUps = async () => Number(/queue_wait_seconds_count(?:\{[^}]*\})? (\d+)/.exec(await (await fetch(`${stack.url}/metrics`)).text())?.[1] ?? 0)
    const before = await wakeUps()
    // A 4 s answer: four sweeps (SWEEP_INTERVAL_SECONDS=1) pass while its chat's lock is held.
    stack.openai.setReply(() => ({ text: "a slow answer, streamed over four seconds", chunkSize: 4, chunkDelayMs: 400 }))
    try {
      expect((await stack.post({ update_id: 3004, ...textMessageUpdate({ chatId: 3004, text: "take your time" }) })).status).toBe(200)
      await waitForStatus(stack, 3004, "answered", 20_000)
      expect(stack.telegram.messages(3004).map((m) => m.text)).toEqual(["a slow answer, streamed over four seconds"])
    } finally {
      stack.openai.reset()
    }
    expect((await wakeUps()) - before).toBe(1)
  })
})
