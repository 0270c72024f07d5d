import { Array as Arr, Context, Duration, Effect, Exit, Layer, Metric, Request, RequestResolver, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { InboundUpdate } from "../schema/TelegramUpdate.ts"
import { AppConfig } from "./AppConfig.ts"
import { JobQueue, QueueOutage } from "./JobQueue.ts"
import { updatesReceived } from "./Metrics.ts"
import { RateLimiter } from "./RateLimiter.ts"

export class StorageOutage extends Schema.TaggedError<StorageOutage>()("StorageOutage", {
  message: Schema.String
}) {}

export type Acceptance = "accepted" | "duplicate" | "ignored"

class AcceptUpdate extends Request.Class<
  { readonly update: InboundUpdate },
  Acceptance,
  StorageOutage | QueueOutage
> {}

const maxBatch = 500
const rateWindow = Duration.minutes(1)

/**
 * The webhook's side of the mailbox: records each update once, stores text messages as queued
 * mail for their chat, and wakes the chat. Updates arriving in the same event-loop turn share
 * one transaction and one queue call, which is what lets one process ingest thousands a second.
 */
export class Inbox extends Context.Service<Inbox, {
  readonly accept: (update: InboundUpdate) => Effect.Effect<Acceptance, StorageOutage | QueueOutage>
}>()("bot/Inbox") {
  static readonly layer = Layer.effect(
    Inbox,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const queue = yield* JobQueue
      const limiter = yield* RateLimiter
      const config = yield* AppConfig

      const store = (updates: Arr.NonEmptyReadonlyArray<InboundUpdate>, overLimit: ReadonlySet<number>) =>
        sql.withTransaction(Effect.gen(function*() {
          const inserted = yield* sql<{ update_id: bigint }>`
            insert into telegram_updates ${
            sql.insert(Arr.map(updates, (u) => ({ update_id: u.updateId, kind: u._tag === "Ignored" ? u.kind : u._tag })))
          }
            on conflict (update_id) do nothing
            returning update_id`
          const fresh = new Set(inserted.map((row) => Number(row.update_id)))
          const stateful = updates.filter((u) => fresh.has(u.updateId) && u._tag !== "Ignored")
          const people = new Map<number, Record<string, unknown>>()
          const chats = new Map<number, Record<string, unknown>>()
          for (const u of stateful) {
            if (u._tag === "Ignored") continue
            people.set(u.from.id, {
              id: u.from.id,
              username: u.from.username ?? null,
              first_name: u.from.first_name ?? "",
              last_name: u.from.last_name ?? null,
              language_code: u.from.language_code ?? null,
              is_bot: u.from.is_bot ?? false
            })
            chats.set(u.chat.id, { id: u.chat.id, type: u.chat.type, title: u.chat.title ?? null })
          }
          const peopleRows = [...people.values()]
          const chatRows = [...chats.values()]
          if (!Arr.isReadonlyArrayNonEmpty(peopleRows) || !Arr.isReadonlyArrayNonEmpty(chatRows)) return fresh
          yield* sql`
            insert into users ${sql.insert(peopleRows)}
            on conflict (id) do update set username = excluded.username, first_name = excluded.first_name,
              last_name = excluded.last_name, language_code = excluded.language_code, updated_at = now(),
              unreachable_at = null`
          yield* sql`
            insert into chats ${sql.insert(chatRows)}
            on conflict (id) do update set type = excluded.type, title = excluded.title, unreachable_at = null`
          const texts = stateful.flatMap((u): Array<Record<string, unknown>> =>
            u._tag === "Text"
              ? [{
                update_id: u.updateId,
                chat_id: u.chat.id,
                user_id: u.from.id,
                telegram_message_id: u.messageId,
                text: u.text,
                over_limit: overLimit.has(u.updateId)
              }]
              : []
          )
          if (Arr.isReadonlyArrayNonEmpty(texts)) yield* sql`insert into messages ${sql.insert(texts)}`
          // A private chat's my_chat_member says whether the user blocked the bot or came back.
          for (const u of stateful) {
            if (u._tag !== "Membership") continue
            const reachable = u.status !== "kicked"
            yield* sql`update users set unreachable_at = ${reachable ? null : new Date()} where id = ${u.from.id}`
            yield* sql`update chats set unreachable_at = ${reachable ? null : new Date()} where id = ${u.chat.id}`
          }
          return fresh
        })).pipe(Effect.mapError((error) => new StorageOutage({ message: `database: ${error.message}` })))

      const resolver = RequestResolver.make<AcceptUpdate>(Effect.fnUntraced(function*(entries) {
        // The same update twice in one batch (a fast retry) is stored once.
        const updates = Arr.dedupeWith(Arr.map(entries, (entry) => entry.request.update), (a, b) => a.updateId === b.updateId)
        const overLimit = new Set<number>()
        yield* Effect.forEach(updates, (u) =>
          u._tag === "Text"
            ? limiter.consume(`user:${u.from.id}`, config.userMessagesPerMinute, rateWindow).pipe(
              Effect.map((decision) => {
                if (!decision.allowed) overLimit.add(u.updateId)
              })
            )
            : Effect.void, { concurrency: "unbounded", discard: true }).pipe(
            Effect.mapError((error) => new QueueOutage({ message: error.message }))
          )
        const fresh = yield* store(updates, overLimit)
        // Duplicates wake their chat too: a retry after a failed wake-up then repairs it at once.
        const chats = new Set(updates.flatMap((u) => (u._tag === "Text" ? [u.chat.id] : [])))
        if (chats.size > 0) yield* queue.wake([...chats])
        for (const entry of entries) {
          const u = entry.request.update
          const outcome: Acceptance = u._tag === "Ignored" ? "ignored" : fresh.delete(u.updateId) ? "accepted" : "duplicate"
          entry.completeUnsafe(Exit.succeed(outcome))
        }
      })).pipe(RequestResolver.batchN(maxBatch))

      return Inbox.of({
        accept: (update) =>
          Effect.request(new AcceptUpdate({ update }), resolver).pipe(
            Effect.tap((outcome) => Metric.update(Metric.withAttributes(updatesReceived, { outcome }), 1))
          )
      })
    })
  )
}
