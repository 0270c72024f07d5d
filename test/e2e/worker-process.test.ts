import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { mentioningBot, textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import { type Stack, startStack, waitForStatus } from "../support/Stack.ts"
import { killAll, ProgramProcess } from "../support/ProgramProcess.ts"

const longAnswer = Array.from({ length: 50 }, (_, i) => `part${i}`).join(" ")

describe("the worker as its own process", () => {
  let stack: Stack
  const workers: Array<ProgramProcess> = []
  const startWorker = (env: Record<string, string> = {}) => {
    const worker = new ProgramProcess("worker", { ...stack.env, LOG_LEVEL: "Info", ...env })
    workers.push(worker)
    return worker
  }
  beforeAll(async () => {
    stack = await startStack({ program: "api" })
  })
  afterEach(() => killAll(workers))
  afterAll(() => stack.stop())

  it("redoes a turn killed mid-way after a restart: one reply, no answer lost or doubled", async () => {
    stack.openai.setReply(() => ({ text: longAnswer, chunkSize: 6, chunkDelayMs: 80 }))
    const first = startWorker()
    // A group, where the reply streams into a real message: the redo must edit that one.
    const chatId = -4001
    expect((await stack.post({ update_id: 4001, ...textMessageUpdate({ chatId, userId: 4001, groupTitle: "Team", ...mentioningBot("crash me") }) })).status).toBe(200)
    // The reply exists and is still streaming: kill the worker as a crash would.
    await stack.telegram.waitFor((t) => t.callsFor(chatId, "editMessageText").length >= 1 || undefined, 20_000)
    first.kill("SIGKILL")
    expect(await first.exited).toBe(null)
    expect(stack.query("select status || ':' || attempts from messages where update_id = 4001")).toBe("processing:1")

    startWorker()
    await waitForStatus(stack, 4001, "answered", 30_000)
    expect(stack.query("select attempts from messages where update_id = 4001")).toBe("2")
    const messages = stack.telegram.messages(chatId)
    expect(messages).toHaveLength(1)
    expect(messages[0]!.text).toBe(longAnswer)
    expect(stack.telegram.callsFor(chatId, "sendMessage").filter((c) => c.status === 200)).toHaveLength(1)
  })

  it("on SIGTERM finishes the turn in flight within the grace period and exits 0", async () => {
    stack.openai.setReply(() => ({ text: longAnswer, chunkSize: 10, chunkDelayMs: 80 }))
    const worker = startWorker({ SHUTDOWN_GRACE_SECONDS: "15" })
    const chatId = 4002
    expect((await stack.post({ update_id: 4002, ...textMessageUpdate({ chatId, text: "finish me" }) })).status).toBe(200)
    await stack.telegram.waitFor((t) => t.callsFor(chatId, "sendMessageDraft").length >= 1 || undefined, 20_000)
    worker.kill("SIGTERM")
    expect(await worker.exited).toBe(0)
    expect(stack.query("select status from messages where update_id = 4002")).toBe("answered")
    expect(stack.telegram.messages(chatId).map((m) => m.text)).toEqual([longAnswer])
    expect(worker.output).not.toContain(stack.env.OPENAI_API_KEY!)
    expect(worker.output).not.toContain(stack.env.TELEGRAM_BOT_TOKEN!)
    expect(worker.output).toMatch(/"message":"chat worker stopped","in_flight":1,"finished":1,"handed_back":0/)
  })

  it("on SIGTERM hands back a turn that outlasts the grace period, for the next worker to finish", async () => {
    stack.openai.setReply(() => ({ text: longAnswer, chunkSize: 5, chunkDelayMs: 150 }))
    const worker = startWorker({ SHUTDOWN_GRACE_SECONDS: "1" })
    const chatId = 4003
    expect((await stack.post({ update_id: 4003, ...textMessageUpdate({ chatId, text: "hand me back" }) })).status).toBe(200)
    await stack.telegram.waitFor((t) => t.callsFor(chatId, "sendMessageDraft").length >= 1 || undefined, 20_000)
    worker.kill("SIGTERM")
    expect(await worker.exited).toBe(0)
    // It did not wait for the answer (that takes far longer than the grace): the stream was cut
    // and the message handed back.
    await stack.openai.waitFor((o) => o.requests.at(-1)?.aborted, 5_000)
    expect(stack.query("select status from messages where update_id = 4003")).toBe("queued")
    expect(worker.output).toMatch(/"message":"chat worker stopped","in_flight":1,"finished":0,"handed_back":1/)
    startWorker()
    await waitForStatus(stack, 4003, "answered", 30_000)
    expect(stack.telegram.messages(chatId).map((m) => m.text)).toEqual([longAnswer])
  })
})
