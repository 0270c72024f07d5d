import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll } from "vitest"
import type { Plan } from "../../../src/services/billing/Entitlement.ts"
import { Quota, type QuotaUse } from "../../../src/services/billing/Quota.ts"
import { mail } from "../../support/ChatTurnLayer.ts"
import { testDatabase } from "../../support/Database.ts"
import { atWallTime } from "../../support/wallClock.ts"

/** Quota.consume for a message of its own, claimed in chat 1 (the decision is stored with it). */
const consume = (userId: number, plan: Plan, messages: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ id: string }>`
      insert into messages (kind, chat_id, text, status, attempts) values ('notice', 1, '', 'processing', 1) returning id`
    const claimed = mail({ id: Number(row!.id), chatId: 1, text: "" })
    return yield* Quota.use((quota) => quota.consume(userId, plan, messages, { mail: claimed, allowed: "quota_ok", refused: "paywall" }))
  })

// Europe/Paris is UTC+1 in winter: its midnight of 30 November 2026 is 23:00 UTC on the 29th.
const parisMidnight = Date.parse("2026-11-29T23:00:00Z")
const database = testDatabase(
  { FREE_DAILY_MESSAGES: "3", PAID_DAILY_MESSAGES: "5", BILLING_TIMEZONE: "Europe/Paris" },
  "insert into users (id, first_name) select g, 'u' from generate_series(1, 20) g; insert into chats (id, type) values (1, 'private')"
)
afterAll(() => database.drop())

const testLayer = Quota.layer.pipe(Layer.provideMerge(database.layer))

layer(testLayer, { excludeTestServices: true })("Quota (real Postgres, the wall clock set)", (it) => {
  it.effect("allows the free plan's last message of the day, refuses the next, and starts again at midnight in BILLING_TIMEZONE", () =>
    Effect.gen(function*() {
      const uses = []
      for (let i = 0; i < 4; i++) uses.push(yield* consume(1, "free", 1).pipe(atWallTime(parisMidnight - 1000)))
      const day = "2026-11-29"
      assert.deepStrictEqual(uses, [
        { day, allowed: true, used: 1, limit: 3 },
        { day, allowed: true, used: 2, limit: 3 },
        { day, allowed: true, used: 3, limit: 3 },
        { day, allowed: false, used: 3, limit: 3 }
      ])
      assert.deepStrictEqual(yield* consume(1, "free", 1).pipe(atWallTime(parisMidnight)), {
        day: "2026-11-30",
        allowed: true,
        used: 1,
        limit: 3
      })
    }))

  it.effect("never lets concurrent turns pass the limit together", () =>
    Effect.gen(function*() {
      const quota = yield* Quota
      const uses = yield* Effect.forEach(Array.from({ length: 12 }), () => consume(2, "promo", 1), { concurrency: "unbounded" })
      assert.strictEqual(uses.filter((u) => u.allowed).length, 5)
      assert.deepStrictEqual((yield* quota.today(2, "promo")).used, 5)
    }))

  it.effect("counts a burst as several messages, refusing a burst that would pass the limit whole", () =>
    Effect.gen(function*() {
      const counted = (use: QuotaUse) => ({ allowed: use.allowed, used: use.used })
      assert.isTrue((yield* consume(3, "free", 2)).allowed)
      assert.deepStrictEqual(counted(yield* consume(3, "free", 2)), { allowed: false, used: 2 })
      assert.isTrue((yield* consume(3, "free", 1)).allowed)
      assert.deepStrictEqual(counted(yield* consume(4, "free", 4)), { allowed: false, used: 0 })
    }))

  it.effect("gives back what a refused turn had counted, to the day it was counted in", () =>
    Effect.gen(function*() {
      const quota = yield* Quota
      const before = parisMidnight - 1000
      let charged = ""
      for (let i = 0; i < 3; i++) charged = (yield* consume(5, "free", 1).pipe(atWallTime(before))).day
      // The refusal comes after midnight: the message goes back to the day before, not today.
      yield* quota.giveBack(5, charged, 1).pipe(atWallTime(parisMidnight + 1000))
      assert.deepStrictEqual(yield* quota.today(5, "free").pipe(atWallTime(before)), { day: charged, allowed: true, used: 2, limit: 3 })
      assert.strictEqual((yield* quota.today(5, "free").pipe(atWallTime(parisMidnight + 1000))).used, 0)
    }))
})

describe("Quota with FREE_DAILY_MESSAGES=0", () => {
  const unlimited = testDatabase(
    { FREE_DAILY_MESSAGES: "0" },
    "insert into users (id, first_name) values (1, 'u'); insert into chats (id, type) values (1, 'private')"
  )
  afterAll(() => unlimited.drop())

  layer(Quota.layer.pipe(Layer.provideMerge(unlimited.layer)), { excludeTestServices: true })((it) => {
    it.effect("counts but never refuses on the free plan", () =>
      Effect.gen(function*() {
        const quota = yield* Quota
        for (let i = 0; i < 100; i++) assert.isTrue((yield* consume(1, "free", 1)).allowed)
        const today = yield* quota.today(1, "free")
        assert.deepStrictEqual({ allowed: today.allowed, used: today.used, limit: today.limit }, { allowed: true, used: 100, limit: 0 })
      }))
  })
})
