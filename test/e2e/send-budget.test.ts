import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { killAll, ProgramProcess } from "../support/ProgramProcess.ts"
import { type Stack, startStack, waitForStatus } from "../support/Stack.ts"
import { textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import type { TelegramCall } from "../support/telegram/types.ts"

/** The Bot API calls that write to a chat: the ones the send budget counts. */
const writing = new Set(["sendMessage", "editMessageText", "sendMessageDraft", "sendChatAction", "deleteMessage"])

/** The most calls that arrived within any 1,000 ms (half-open windows starting at each call). */
const busiestSecond = (calls: ReadonlyArray<TelegramCall>) => {
  const times = calls.filter((c) => writing.has(c.method)).map((c) => c.at).sort((a, b) => a - b)
  let most = 0
  for (let start = 0, end = 0; start < times.length; start++) {
    while (end < times.length && times[end]! < times[start]! + 1000) end++
    most = Math.max(most, end - start)
  }
  return most
}

/** The final answers (sendMessage without the streaming cursor) each chat got. */
const finals = (stack: Stack, chatId: number) =>
  stack.telegram.callsFor(chatId, "sendMessage").filter((c) => c.status === 200 && !String(c.params["text"]).endsWith(" ▍"))

const postAll = (stack: Stack, updates: ReadonlyArray<unknown>) =>
  Promise.all(updates.map(async (update) => expect((await stack.post(update)).status).toBe(200)))

/**
 * Waits until each chat got `count` final answers, watching the fake Telegram: polling the
 * database (psql, synchronous) would stall this process, where the fakes (and the program) run.
 */
const answered = (stack: Stack, chatIds: ReadonlyArray<number>, timeoutMs: number, count = 1) =>
  stack.telegram.waitFor(() => chatIds.every((chatId) => finals(stack, chatId).length >= count) || undefined, timeoutMs)

describe("the send budget, across worker processes", () => {
  const sendsPerSecond = 10
  let stack: Stack
  const workers: Array<ProgramProcess> = []
  beforeAll(async () => {
    stack = await startStack({ program: "api" })
  })
  afterEach(() => killAll(workers))
  afterAll(() => stack.stop())

  it(`two workers on one Redis never send more than ${sendsPerSecond} a second together`, async () => {
    for (let i = 0; i < 2; i++) {
      // Few chats at once each, so both take wake-ups.
      workers.push(new ProgramProcess("worker", { ...stack.env, LOG_LEVEL: "Info", TELEGRAM_SENDS_PER_SECOND: String(sendsPerSecond), WORKER_CONCURRENCY: "4" }))
    }
    // A second of streaming each: typing, drafts and a final answer per chat, far more than the budget.
    stack.openai.setReply((body) => ({ text: `Answer to ${String(body.messages?.at(-1)?.content)}`, chunkSize: 3, chunkDelayMs: 100 }))
    const chats = Array.from({ length: 30 }, (_, i) => 5100 + i)
    await postAll(stack, chats.map((chatId) => ({ update_id: chatId, ...textMessageUpdate({ chatId, text: `q${chatId}` }) })))
    await answered(stack, chats, 60_000)

    for (const chatId of chats) expect(finals(stack, chatId)).toHaveLength(1)
    // Both processes answered (each logs its turns), so both sent.
    for (const worker of workers) expect(worker.output).toContain(`"message":"turn done"`)
    // At most 10 turns are granted in any second; the fake sees them on arrival, when a loaded
    // machine may have bunched two: 1 of slack. Two budgets would give about 20.
    expect(busiestSecond(stack.telegram.calls)).toBeLessThanOrEqual(sendsPerSecond + 1)
    expect(stack.telegram.violations).toEqual([])
  }, 120_000)
})

describe("the send budget, in one process", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ env: { TELEGRAM_SENDS_PER_SECOND: "20" } })
  })
  afterEach(() => stack.resetFakes())
  afterAll(() => stack.stop())

  it("a 20-message burst in one chat does not hold back 50 chats writing once", async () => {
    const burstChat = 5200
    const singles = Array.from({ length: 50 }, (_, i) => 5300 + i)
    // The burst arrives first.
    await postAll(stack, Array.from({ length: 20 }, (_, i) => ({ update_id: 52_000 + i, ...textMessageUpdate({ chatId: burstChat, text: `burst ${i}` }) })))
    await postAll(stack, singles.map((chatId) => ({ update_id: chatId, ...textMessageUpdate({ chatId, text: `single ${chatId}` }) })))
    await answered(stack, singles, 60_000)
    const lastSingle = Math.max(...singles.map((chatId) => finals(stack, chatId)[0]!.at))
    // The burst's chat gets about one answer a second (Telegram's per-chat limit), the others
    // their turns in between: all 50 are answered before the burst's tenth answer.
    const burstAnswers = finals(stack, burstChat).map((c) => c.at)
    expect(burstAnswers.filter((at) => at <= lastSingle).length).toBeLessThan(10)
    await answered(stack, [burstChat], 60_000, 20)
    expect(finals(stack, burstChat)).toHaveLength(20)
    // The last one's status lands just after its answer: every message ends answered, once.
    await waitForStatus(stack, Number(stack.query("select update_id from messages where chat_id = 5200 order by id desc limit 1")), "answered")
    expect(stack.query("select count(*) filter (where status = 'answered' and attempts = 1) || '/' || count(*) from messages where chat_id = 5200")).toBe("20/20")
  }, 120_000)

  it("a 429 in a private chat pauses every chat for its retry_after, not only the chat it came from", async () => {
    stack.telegram.failNext("sendMessage", { code: 429, retryAfter: 2 })
    await postAll(stack, [{ update_id: 5401, ...textMessageUpdate({ chatId: 5401, text: "first" }) }])
    const refused = await stack.telegram.waitFor((t) => t.calls.find((c) => c.method === "sendMessage" && c.status === 429), 20_000)
    await postAll(stack, [5402, 5403].map((chatId) => ({ update_id: chatId, ...textMessageUpdate({ chatId, text: "next" }) })))
    await answered(stack, [5401, 5402, 5403], 30_000)
    const after = stack.telegram.calls.filter((c) => writing.has(c.method) && c.at > refused.at)
    expect(after.map((c) => c.chatId)).toEqual(expect.arrayContaining([5401, 5402, 5403]))
    // Nothing was written anywhere until retry_after had passed (the fake's clock, 50 ms slack for its own timing).
    expect(Math.min(...after.map((c) => c.at))).toBeGreaterThanOrEqual(refused.at + 2000 - 50)
    expect(stack.telegram.violations).toEqual([])
  }, 60_000)
})
