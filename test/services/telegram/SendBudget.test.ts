import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { type BotPace, memoryPace, SendBudget, SendPriority } from "../../../src/services/telegram/SendBudget.ts"
import { maxWaitSeconds } from "../../../src/services/telegram/Telegram.ts"

const rate = 10
/** Each test on a budget of its own, at 10 sends a second. */
const fresh = <A, E>(body: Effect.Effect<A, E, SendBudget>) => Effect.provide(body, SendBudget.layerTest(rate))

interface Grant {
  readonly label: string
  readonly at: number
}

/** Lets `millis` pass in 10 ms steps, so the budget's dispatcher keeps up with the clock. */
const elapse = (millis: number) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += 10) yield* TestClock.adjust(Math.min(10, millis - t))
  })

/** Queues a call; its grant (label and time) lands in `grants`. */
const call = (grants: Array<Grant>, label: string, method: string, chatId: number | undefined, priority: SendPriority = "final") =>
  SendBudget.use((budget) => budget.awaitTurn(method, chatId)).pipe(
    Effect.provideService(SendPriority, priority),
    Effect.andThen(Clock.currentTimeMillis),
    Effect.map((at) => void grants.push({ label, at })),
    Effect.forkChild
  )

/**
 * Two processes' budgets on one shared window (as in Redis: the bot's window and each chat's pace), whose
 * chat paces take 300 ms to read.
 */
const twoProcesses = Effect.gen(function*() {
  const bot = yield* memoryPace(rate)
  const chats = new Map<number, number>()
  const shared: BotPace = {
    ...bot,
    chatPace: (chatId) =>
      Effect.sleep("300 millis").pipe(
        Effect.andThen(Clock.currentTimeMillis),
        Effect.map((now) => Math.max(0, (chats.get(chatId) ?? 0) - now))
      ),
    keepChatPace: (chatId, millis) => Clock.currentTimeMillis.pipe(Effect.map((now) => void chats.set(chatId, now + millis)))
  }
  return [yield* SendBudget.make(shared), yield* SendBudget.make(shared)] as const
})

describe("SendBudget", () => {
  /** The most grants within any 1,000 ms (half-open windows starting at each grant). */
  const busiestSecond = (grants: ReadonlyArray<Grant>) =>
    Math.max(...grants.map((g) => grants.filter((other) => other.at >= g.at && other.at < g.at + 1000).length))

  it.effect(`no second holds more than ${rate} sends; texts go half a send apart, what shows nothing new a whole send`, () =>
    fresh(Effect.gen(function*() {
      const texts: Array<Grant> = []
      for (let chat = 1; chat <= 25; chat++) yield* call(texts, `c${chat}`, "sendMessage", chat)
      yield* elapse(3_000)
      assert.lengthOf(texts, 25)
      assert.strictEqual(busiestSecond(texts), rate)
      for (let i = 1; i < texts.length; i++) assert.isAtLeast(texts[i]!.at - texts[i - 1]!.at, 500 / rate - 1e-6)
      // The first second's 10 go within half of it: the window, not an even pace.
      assert.isAtMost(texts[rate - 1]!.at - texts[0]!.at, 500)
      const updates: Array<Grant> = []
      for (let chat = 31; chat <= 45; chat++) yield* call(updates, `u${chat}`, "editMessageText", chat, "update")
      yield* elapse(3_000)
      assert.lengthOf(updates, 15)
      for (let i = 1; i < updates.length; i++) assert.isAtLeast(updates[i]!.at - updates[i - 1]!.at, 1000 / rate - 1e-6)
    })))

  it.effect("what the last second left unused goes to texts at once; typing's places come back a second later, at typing's pace", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      // Typing for 4 chats while their answers generate, then 12 first texts at once.
      for (let chat = 1; chat <= 4; chat++) yield* call(grants, "typing", "sendChatAction", chat, "update")
      yield* elapse(600)
      for (let chat = 1; chat <= 12; chat++) yield* call(grants, "first", "sendMessage", chat, "first")
      yield* elapse(3_000)
      const firsts = grants.filter((g) => g.label === "first").map((g) => g.at)
      assert.deepStrictEqual(grants.filter((g) => g.label === "typing").map((g) => g.at), [0, 100, 200, 300])
      // 4 typing sends in the second: 6 first texts go 50 ms apart from 600 ms; then one as each
      // typing send leaves the window, and the rest as the first texts' own places come back.
      assert.deepStrictEqual(firsts, [600, 650, 700, 750, 800, 850, 1_000, 1_100, 1_200, 1_300, 1_600, 1_650])
      assert.strictEqual(busiestSecond(grants), rate)
    })))

  it.effect("a send granted late (a slow reservation) moves the window's next sends: no second holds more than the rate", () =>
    Effect.gen(function*() {
      const bot = yield* memoryPace(rate)
      let calls = 0
      // The second reservation takes 80 ms (a slow Redis, a busy event loop): the send it is
      // fetched behind goes late, and the window's places do not know it.
      const slow: BotPace = {
        ...bot,
        reserve: (count, rank, unused, notBeforeMs) =>
          (++calls === 2 ? Effect.sleep("80 millis") : Effect.void).pipe(Effect.andThen(bot.reserve(count, rank, unused, notBeforeMs)))
      }
      const budget = yield* SendBudget.make(slow, { chatLimits: false })
      const grants: Array<Grant> = []
      for (let chat = 1; chat <= 20; chat++) {
        yield* SendBudget.use((b) => b.awaitTurn("sendMessage", chat)).pipe(
          Effect.provideService(SendBudget, budget),
          Effect.andThen(Clock.currentTimeMillis),
          Effect.map((at) => void grants.push({ label: `c${chat}`, at })),
          Effect.forkChild
        )
      }
      yield* elapse(4_000)
      assert.lengthOf(grants, 20)
      assert.strictEqual(busiestSecond(grants), rate)
    }))

  it.effect("memoryPace: a place given up and freed goes to the next sends; the window is kept by time, not count", () =>
    Effect.gen(function*() {
      const pace = yield* memoryPace(rate)
      const first = yield* pace.reserve(rate, 0, [], 0)
      assert.deepStrictEqual(first, { inMs: [0, 50, 100, 150, 200, 250, 300, 350, 400, 450], places: [0, 50, 100, 150, 200, 250, 300, 350, 400, 450] })
      // The last two were not used: their places go to the next sends, not a second later.
      assert.deepStrictEqual(yield* pace.reserve(3, 0, [400, 450], 0), { inMs: [400, 450, 1_000], places: [400, 450, 1_000] })
      // Freeing places past the window's 10 lets no send in sooner: the 10 before them are
      // still in the window.
      const again = yield* memoryPace(rate)
      assert.deepStrictEqual(yield* again.reserve(12, 0, [], 0), {
        inMs: [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 1_000, 1_050],
        places: [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 1_000, 1_050]
      })
      assert.deepStrictEqual(yield* again.reserve(1, 0, [1_000, 1_050], 0), { inMs: [1_000], places: [1_000] })
      // Nor sooner than asked.
      assert.deepStrictEqual((yield* memoryPace(rate).pipe(Effect.flatMap((p) => p.reserve(1, 0, [], 300)))), { inMs: [300], places: [300] })
    }))

  it.effect("typing waits while more replies wait for a first sign than the window has room, at most a second", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      // Quiet: typing goes at once.
      yield* call(grants, "typing 1", "sendChatAction", 1, "update")
      yield* elapse(10)
      assert.deepStrictEqual(grants.map((g) => g.label), ["typing 1"])
      // A burst: 12 replies want typing, never room for as many: none goes for a second, while
      // first texts do.
      for (let chat = 2; chat <= 13; chat++) yield* call(grants, `typing ${chat}`, "sendChatAction", chat, "update")
      yield* elapse(300)
      for (let chat = 2; chat <= 5; chat++) yield* call(grants, `first ${chat}`, "sendMessageDraft", chat, "first")
      yield* elapse(500)
      assert.sameMembers(grants.slice(1).map((g) => g.label), ["first 2", "first 3", "first 4", "first 5"])
      yield* elapse(2_000)
      const typing = grants.slice(5)
      assert.lengthOf(typing, 12)
      assert.isAtLeast(typing[0]!.at, 1_010)
    })))

  it.effect("held typing goes as soon as the window has room for it", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      // 9 finals from 0 to 400 ms, then 2 replies want typing: room for 1 send, 2 wanting it.
      for (let chat = 1; chat <= 9; chat++) yield* call(grants, "final", "sendMessage", chat)
      yield* elapse(500)
      for (let chat = 11; chat <= 12; chat++) yield* call(grants, "typing", "sendChatAction", chat, "update")
      yield* elapse(1_500)
      // Room for both once the finals at 0 and 50 ms leave the window; a whole send apart.
      assert.deepStrictEqual(grants.filter((g) => g.label === "typing").map((g) => g.at), [1_050, 1_150])
    })))

  it.effect("serves final answers first, then first texts, then typing and further previews", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      // A backlog of previews and first texts, then finals arrive: each final goes before them.
      for (let chat = 1; chat <= 5; chat++) yield* call(grants, "update", "editMessageText", chat, "update")
      for (let chat = 11; chat <= 15; chat++) yield* call(grants, "first", "sendMessageDraft", chat, "first")
      for (let chat = 21; chat <= 25; chat++) yield* call(grants, "final", "sendMessage", chat)
      yield* elapse(2_000)
      // Every grant by priority: the calls all queue before the budget's first pick.
      const rank = { final: 0, first: 1, update: 2 } as const
      const order = grants.map((g) => rank[g.label as keyof typeof rank])
      assert.lengthOf(grants, 15, JSON.stringify(grants))
      assert.deepStrictEqual(order, [...order].sort())
    })))

  it.effect("round robin: a burst in one chat does not hold the others back; a chat never served goes first", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      // Group chat -1 has 10 calls queued first (groups take 3 at once, then one per 3.6 s).
      for (let i = 0; i < 10; i++) yield* call(grants, "burst", "sendMessage", -1)
      for (let chat = 1; chat <= 10; chat++) yield* call(grants, `c${chat}`, "sendMessage", chat)
      yield* elapse(3_000)
      const order = grants.map((g) => g.label)
      // Each single chat is served before the burst's second call: the burst's chat was served last.
      assert.strictEqual(order[0], "burst")
      assert.deepStrictEqual(order.slice(1, 11), Array.from({ length: 10 }, (_, i) => `c${i + 1}`))
      assert.isAtMost(order.filter((l) => l === "burst").length, 3)
    })))

  it.effect("a first text goes to the chat whose text came last; one passed over gets its final answer before any", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      const waiting: Array<Fiber.Fiber<unknown, unknown>> = []
      for (let chat = 1; chat <= 6; chat++) waiting.push(yield* call(grants, `c${chat}`, "sendMessageDraft", chat, "first"))
      yield* elapse(70)
      // Chat 2's answer is complete: its draft is given up, its final answer waits instead.
      yield* Fiber.interrupt(waiting[1]!)
      yield* call(grants, "final c2", "sendMessage", 2)
      yield* elapse(500)
      // The latest text first (the calls all queue before the first pick): the earliest one's
      // answer is the nearest to complete, its final text comes soon.
      assert.deepStrictEqual(grants.map((g) => g.label), ["c6", "c5", "final c2", "c4", "c3", "c1"])
    })))

  it.effect("keeps each chat's own limit: a private chat takes 3 at once then 1 a second; a group 1 every 3.6 s", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      for (let i = 0; i < 5; i++) yield* call(grants, "private", "sendMessage", 7)
      for (let i = 0; i < 4; i++) yield* call(grants, "group", "sendMessage", -7)
      yield* elapse(8_000)
      const times = (label: string) => grants.filter((g) => g.label === label).map((g) => g.at)
      const [p, g] = [times("private"), times("group")]
      assert.lengthOf(p, 5)
      assert.isBelow(p[2]! - p[0]!, 1_000)
      assert.isAtLeast(p[3]! - p[0]!, 1_000)
      assert.isAtLeast(p[4]! - p[3]!, 1_000)
      assert.lengthOf(g, 4)
      assert.isAtLeast(g[3]! - g[0]!, 3_600)
    })))

  it.effect("a chat's pace carries over to the next process writing to it (catchUp)", () =>
    Effect.gen(function*() {
      const [first, second] = yield* twoProcesses
      // The first process's turn in private chat 7 uses the chat's burst of 3.
      const burst = yield* Effect.forkChild(Effect.forEach([1, 2, 3], () => first.awaitTurn("sendMessage", 7)))
      yield* elapse(500)
      yield* Fiber.join(burst)
      // The chat's next turn runs in the second process, whose budget is sending meanwhile: its
      // first send waits for the chat's pace to be read, then for the pace.
      const busy = yield* Effect.forkChild(Effect.forEach([20, 21, 22, 23], (chat) => second.awaitTurn("sendMessage", chat)))
      yield* second.catchUp(7)
      const next = yield* Effect.forkChild(second.awaitTurn("sendMessage", 7).pipe(Effect.andThen(Clock.currentTimeMillis)))
      // Another chat, new to both, is not held back.
      const other = yield* Effect.forkChild(second.awaitTurn("sendMessage", 8).pipe(Effect.andThen(Clock.currentTimeMillis)))
      yield* elapse(2_000)
      assert.isAtMost(yield* Fiber.join(other), 900)
      yield* Fiber.join(busy)
      // Three sends from about 0 s: one a second after a burst of 3, so the fourth at about 1 s.
      assert.isAtLeast(yield* Fiber.join(next), 1_000)
    }))

  it.effect("a group's 429 holds the next process writing to the group, and no one else", () =>
    Effect.gen(function*() {
      const [first, second] = yield* twoProcesses
      yield* first.rememberFloodWait(-5, 20)
      // The group's next turn runs in the second process.
      yield* second.catchUp(-5)
      const group = yield* Effect.forkChild(second.awaitTurn("sendMessage", -5).pipe(Effect.andThen(Clock.currentTimeMillis)))
      const other = yield* Effect.forkChild(second.awaitTurn("sendMessage", 6).pipe(Effect.andThen(Clock.currentTimeMillis)))
      yield* elapse(25_000)
      assert.isAtMost(yield* Fiber.join(other), 500)
      assert.isAtLeast(yield* Fiber.join(group), 20_000)
    }))

  it.effect("a preview goes only into a rested chat; the final answer may use the chat's burst", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      yield* call(grants, "final 1", "sendMessage", 8)
      yield* elapse(200)
      yield* call(grants, "preview", "sendMessageDraft", 8, "update")
      yield* call(grants, "final 2", "sendMessage", 8)
      yield* elapse(2_000)
      const at = Object.fromEntries(grants.map((g) => [g.label, g.at]))
      assert.isBelow(at["final 2"]!, 500)
      assert.isAtLeast(at["preview"]!, 2_000 - 1e-6) // rested only after both finals' seconds
    })))

  it.effect("a chat action counts for the bot but not against the chat's own limit", () =>
    fresh(Effect.gen(function*() {
      const grants: Array<Grant> = []
      for (let i = 0; i < 4; i++) yield* call(grants, "typing", "sendChatAction", 9, "update")
      yield* call(grants, "preview", "sendMessageDraft", 9, "update")
      yield* elapse(1_000)
      assert.lengthOf(grants, 5)
      assert.isBelow(Math.max(...grants.map((g) => g.at)), 600)
    })))

  it.effect("a 429 in a group pauses only that group (its own limit)", () =>
    fresh(Effect.gen(function*() {
      const budget = yield* SendBudget
      const grants: Array<Grant> = []
      yield* budget.rememberFloodWait(-100, 5)
      assert.strictEqual(yield* budget.floodWaitSeconds(-100), 5)
      assert.strictEqual(yield* budget.floodWaitSeconds(100), 0)
      yield* call(grants, "group", "sendMessage", -100)
      yield* call(grants, "private", "sendMessage", 100)
      yield* elapse(500)
      assert.deepStrictEqual(grants.map((g) => g.label), ["private"])
      yield* elapse(5_000)
      assert.deepStrictEqual(grants.map((g) => g.label), ["private", "group"])
    })))

  it.effect("a 429 pauses every chat for its retry_after; past 30 s a call fails at once", () =>
    fresh(Effect.gen(function*() {
      const budget = yield* SendBudget
      const grants: Array<Grant> = []
      yield* budget.rememberFloodWait(100, 2)
      assert.strictEqual(yield* budget.floodWaitSeconds(100), 2)
      assert.strictEqual(yield* budget.floodWaitSeconds(101), 2) // the bot waits as a whole
      yield* call(grants, "other chat", "sendMessage", 101)
      yield* call(grants, "same chat", "sendMessage", 100)
      yield* elapse(1_900)
      assert.lengthOf(grants, 0)
      yield* elapse(500)
      assert.deepStrictEqual(grants.map((g) => g.label).sort(), ["other chat", "same chat"])
      assert.isAtLeast(Math.min(...grants.map((g) => g.at)), 2_000)

      yield* budget.rememberFloodWait(200, maxWaitSeconds + 1)
      const error = yield* Effect.flip(budget.awaitTurn("sendMessage", 201))
      assert.strictEqual(error.code, 429)
      // Reads are no writes: they go on during the bot's pause, and wait only for their own chat.
      yield* budget.awaitTurn("getChatMember", undefined)
      yield* budget.awaitTurn("answerCallbackQuery", undefined)
      const read = yield* Effect.flip(budget.awaitTurn("getChatMember", 200))
      assert.strictEqual(read.code, 429)
    })))

  it.effect("a 429 drops the sends reserved ahead: none goes out before the pause ends", () =>
    fresh(Effect.gen(function*() {
      const budget = yield* SendBudget
      const grants: Array<Grant> = []
      for (let chat = 1; chat <= 10; chat++) yield* call(grants, `c${chat}`, "sendMessage", chat)
      yield* elapse(70) // two sent (half a send apart), the next ones reserved
      assert.lengthOf(grants, 2)
      yield* budget.rememberFloodWait(100, 1)
      yield* elapse(990)
      assert.lengthOf(grants, 2, "nothing during the pause")
      yield* elapse(500)
      assert.isAbove(grants.length, 2)
      assert.isAtLeast(grants[2]!.at, 1_070)
    })))

  it.effect("prepaid: the turn is taken first, and the chat's next counted call inside uses it", () =>
    fresh(Effect.gen(function*() {
      const budget = yield* SendBudget
      const grants: Array<Grant> = []
      // A backlog of finals: a prepaid first sign waits behind them, then both of its calls go.
      for (let chat = 1; chat <= 5; chat++) yield* call(grants, "final", "sendMessage", chat)
      const inside = yield* Effect.forkChild(budget.prepaid(
        50,
        Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          yield* budget.awaitTurn("sendMessageDraft", 50) // free: the turn was taken
          const free = yield* Clock.currentTimeMillis
          yield* budget.awaitTurn("sendMessageDraft", 50) // paid again: waits for its turn
          return { started, free, paid: yield* Clock.currentTimeMillis }
        })
      ).pipe(Effect.provideService(SendPriority, "first")))
      yield* elapse(2_000)
      const { free, paid, started } = yield* Fiber.join(inside)
      assert.isAtLeast(started, Math.max(...grants.map((g) => g.at)))
      assert.strictEqual(free, started)
      assert.isAbove(paid, free)
    })))
})
