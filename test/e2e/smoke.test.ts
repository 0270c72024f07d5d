import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { textMessageUpdate } from "../support/FakeTelegram.ts"
import { type Stack, startStack } from "../support/Stack.ts"

describe("smoke", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(async () => {
    await stack.stop()
  })

  it("answers a text message", async () => {
    const res = await stack.post({ update_id: 1, ...textMessageUpdate({ chatId: 42, text: "hello **there**" }) })
    expect(res.status).toBe(200)
    const message = await stack.telegram.waitFor((t) => {
      const m = t.lastMessage(42)
      return m && !m.text.endsWith("▍") && m.text.startsWith("Echo") ? m : undefined
    }, 10_000)
    console.log(message, stack.telegram.calls.map((c) => `${c.method} ${c.status}`))
    console.log(stack.query("select id, status, answer, reply_message_ids from messages"))
    console.log(stack.query("select * from usage"))
  })
})
