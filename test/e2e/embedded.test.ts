import { existsSync, readdirSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mediaMessageUpdate, mentioningBot, textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import { type Stack, startStack } from "../support/Stack.ts"

describe("embedded layer set (PGlite, in-process queue, lock and limiter)", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ mode: "embedded" })
  }, 120_000)
  afterAll(() => stack.stop())

  const last = (chatId: number, text: string) =>
    stack.telegram.waitFor((t) => t.lastMessage(chatId)?.text === text || undefined, 15_000)

  it("answers, ignores a duplicate update, keeps context, and forgets it after /new", async () => {
    const chatId = 5001
    const update = { update_id: 5001, ...textMessageUpdate({ chatId, text: "hello embedded" }) }
    expect((await stack.post(update)).status).toBe(200)
    expect((await stack.post(update)).status).toBe(200)
    await last(chatId, "Echo: hello embedded")
    expect((await stack.post({ update_id: 5002, ...textMessageUpdate({ chatId, text: "again" }) })).status).toBe(200)
    await last(chatId, "Echo: again")
    expect(stack.openai.requests).toHaveLength(2)
    expect(stack.openai.requests[1]!.body.messages!.map((m) => m.content)).toContain("Echo: hello embedded")
    expect((await stack.post({ update_id: 5003, ...textMessageUpdate({ chatId, text: "/new" }) })).status).toBe(200)
    await stack.telegram.waitFor((t) => t.lastMessage(chatId)?.text.includes("new conversation") || undefined, 15_000)
    expect((await stack.post({ update_id: 5004, ...textMessageUpdate({ chatId, text: "fresh" }) })).status).toBe(200)
    await last(chatId, "Echo: fresh")
    expect(stack.openai.requests[2]!.body.messages).toHaveLength(2)
    expect(stack.telegram.messages(chatId)).toHaveLength(4)
  })

  it("answers several chats at once on its single database connection", async () => {
    const chats = [5101, 5102, 5103, 5104, 5105, 5106]
    const statuses = await Promise.all(
      chats.map((chatId, i) => stack.post({ update_id: 5100 + i, ...textMessageUpdate({ chatId, text: `chat ${chatId}` }) }))
    )
    expect(statuses.map((r) => r.status)).toEqual(chats.map(() => 200))
    for (const chatId of chats) await last(chatId, `Echo: chat ${chatId}`)
  })

  it("answers in a forum topic, reads captions, and follows a group to its supergroup, on PGlite", async () => {
    const forum = -1_000_000_005_200
    stack.telegram.makeForum(forum, [3])
    const topic = textMessageUpdate({ chatId: forum, userId: 5201, chatType: "supergroup", isForum: true, threadId: 3, ...mentioningBot("in topic") })
    expect((await stack.post({ update_id: 5201, ...topic })).status).toBe(200)
    await last(forum, "Echo: in topic")
    expect(stack.telegram.lastMessage(forum)!.message_thread_id).toBe(3)

    expect((await stack.post({ update_id: 5202, ...mediaMessageUpdate({ chatId: 5202, kind: "photo", caption: "see this" }) })).status).toBe(200)
    await stack.telegram.waitFor((t) => t.lastMessage(5202)?.text.startsWith("Echo: see this") || undefined, 15_000)

    stack.telegram.migrateChat(-5203, forum - 1)
    const old = textMessageUpdate({ chatId: -5203, userId: 5203, groupTitle: "Old", ...mentioningBot("moved") })
    expect((await stack.post({ update_id: 5203, ...old })).status).toBe(200)
    await last(forum - 1, "Echo: moved")
    expect(stack.openai.requests.filter((r) => JSON.stringify(r.body).includes("moved"))).toHaveLength(1)
  })

  it("is ready: embedded database migrated, in-process queue up", async () => {
    const ready = await fetch(`${stack.url}/ready`)
    expect(await ready.json()).toEqual({ status: "ready", database: "ok", queue: "ok" })
  })
})

describe("the embedded database's exposure", () => {
  it("is reached through a unix socket in a private (0700) directory, removed at stop, not a TCP port", async () => {
    const socketDirs = () => new Set(readdirSync(tmpdir()).filter((name) => name.startsWith("bot-pg-")))
    const before = socketDirs()
    const stack = await startStack({ mode: "embedded" })
    const mine = [...socketDirs()].filter((name) => !before.has(name)).map((name) => join(tmpdir(), name))
      .filter((dir) => existsSync(join(dir, ".s.PGSQL.5432")))
    try {
      expect(mine.length).toBeGreaterThanOrEqual(1)
      for (const dir of mine) {
        expect(statSync(dir).mode & 0o777).toBe(0o700)
        expect(statSync(join(dir, ".s.PGSQL.5432")).isSocket()).toBe(true)
      }
      await stack.post({ update_id: 5301, ...textMessageUpdate({ chatId: 5301, text: "over the socket" }) })
      await stack.telegram.waitFor((t) => t.lastMessage(5301)?.text === "Echo: over the socket" || undefined, 15_000)
    } finally {
      await stack.stop()
    }
    for (const dir of mine) expect(existsSync(dir)).toBe(false)
  }, 120_000)
})
