import { Array as Arr, Context, Effect, Exit, Layer, Metric, Request, RequestResolver } from "effect"
import { SqlClient } from "effect/sql"
import type { InboundUpdate } from "../../schema/telegram/TelegramUpdate.ts"
import { JobQueue, type QueueOutage } from "../platform/JobQueue.ts"
import { ChatMigration } from "./ChatMigration.ts"
import { Stops } from "./Stops.ts"
import { updatesReceived } from "../platform/Metrics.ts"
import { RateLimits } from "../platform/RateLimits.ts"
import type { RedisOutage } from "../platform/Redis.ts"
import { storable, storableOrNull } from "../platform/Storable.ts"
import { currentTraceparent } from "../platform/TraceContext.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/** What became of an update: stored now, stored before (a redelivery), or a kind the bot ignores. */
export type Acceptance = "accepted" | "duplicate" | "ignored"

/** Why an update could not be taken now: the webhook answers 503 and Telegram delivers it again. */
export type InboxError = StorageOutage | QueueOutage | RedisOutage

/** An update to store, and the trace (W3C traceparent) of the request or poll that brought it. */
class AcceptUpdate extends Request.Class<{ readonly update: InboundUpdate; readonly trace: string | undefined }, Acceptance, InboxError> {}

/** The most updates stored by one statement. */
const maxBatch = 500

/** An update as a row of the ingest statement's input (null where the kind has no such field). */
const toRow = ({ trace, update: u }: { readonly update: InboundUpdate; readonly trace: string | undefined }) => {
  if (u._tag !== "Message" && u._tag !== "Membership") {
    // An unexpected update's kind is one of its JSON keys: anything at all.
    return { update_id: u.updateId, kind: u._tag === "Ignored" ? storable(u.kind).slice(0, 64) : u._tag }
  }
  return {
    update_id: u.updateId,
    kind: u._tag,
    chat_id: u.chat.id,
    chat_type: u.chat.type,
    chat_title: storableOrNull(u.chat.title),
    user_id: u.from.id,
    username: storableOrNull(u.from.username),
    first_name: storable(u.from.first_name ?? ""),
    last_name: storableOrNull(u.from.last_name),
    language_code: storableOrNull(u.from.language_code),
    is_bot: u.from.is_bot ?? false,
    message_id: u._tag === "Message" ? u.messageId : null,
    sent_at: u._tag === "Message" ? u.sentAt : null,
    thread_id: u._tag === "Message" ? u.threadId ?? 0 : null,
    text: u._tag === "Message" ? storable(u.text) : null,
    attachment: u._tag === "Message" ? u.attachment : null,
    media_group_id: u._tag === "Message" ? storableOrNull(u.mediaGroupId ?? undefined) : null,
    trace_context: u._tag === "Message" ? trace ?? null : null,
    reachable: u._tag === "Message" || u.status !== "kicked"
  }
}

/**
 * The webhook's side of the mailbox: records each update once, stores messages for the bot as
 * queued mail for their chat and wakes the chat, moves a group upgraded to a supergroup, and
 * notes stop requests. Updates arriving in the same event-loop turn share
 * one transaction and one queue call, which is what lets one process ingest thousands a second.
 */
export class Inbox extends Context.Service<Inbox, {
  /**
   * "accepted" once the update is committed (and its chat woken), "duplicate" for an update_id
   * already stored (its chat is woken again), "ignored" for kinds the bot does not handle (one
   * of a shape it does not expect is logged at warning level, once per kind).
   */
  readonly accept: (update: InboundUpdate) => Effect.Effect<Acceptance, InboxError>
}>()("bot/Inbox") {
  static readonly layer = Layer.effect(
    Inbox,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const queue = yield* JobQueue
      const limits = yield* RateLimits
      const migration = yield* ChatMigration
      const stops = yield* Stops

      /**
       * One statement, so one round trip and atomic without BEGIN/COMMIT: record the update ids,
       * and only for the new ones upsert users and chats (a my_chat_member says whether the user
       * blocked the bot; any text says they are reachable) and store text messages as mail.
       */
      const store = (updates: ReadonlyArray<AcceptUpdate>) =>
        sql<{ update_id: bigint }>`
          with input as (
            select * from jsonb_to_recordset(${JSON.stringify(updates.map(toRow))}::jsonb) as x(
              update_id bigint, kind text, chat_id bigint, chat_type text, chat_title text, user_id bigint,
              username text, first_name text, last_name text, language_code text, is_bot boolean,
              message_id bigint, sent_at double precision, thread_id bigint, text text, attachment text, media_group_id text,
              trace_context text, reachable boolean)
          ),
          fresh as (
            insert into telegram_updates (update_id, kind) select update_id, kind from input
            on conflict (update_id) do nothing
            returning update_id
          ),
          news as (select input.* from input join fresh using (update_id) where input.user_id is not null),
          people as (
            insert into users (id, username, first_name, last_name, language_code, is_bot, unreachable_at)
            select distinct on (user_id) user_id, username, first_name, last_name, language_code, is_bot,
              case when reachable then null else now() end
            from news order by user_id, update_id desc
            on conflict (id) do update set username = excluded.username, first_name = excluded.first_name,
              last_name = excluded.last_name, language_code = excluded.language_code,
              unreachable_at = excluded.unreachable_at, updated_at = now()
          ),
          rooms as (
            insert into chats (id, type, title, unreachable_at)
            select distinct on (chat_id) chat_id, chat_type, chat_title, case when reachable then null else now() end
            from news order by chat_id, update_id desc
            on conflict (id) do update set type = excluded.type, title = excluded.title,
              unreachable_at = excluded.unreachable_at
          ),
          mail as (
            insert into messages (update_id, chat_id, user_id, telegram_message_id, sent_at, thread_id, text, attachment,
              media_group_id, trace_context)
            select update_id, chat_id, user_id, message_id, to_timestamp(sent_at), thread_id, text, attachment, media_group_id,
              trace_context
            from news where kind = 'Message'
          )
          select update_id from fresh`.pipe(
          Effect.map((rows) => new Set(rows.map((row) => Number(row.update_id)))),
          Effect.mapError(storageOutage)
        )

      const resolver = RequestResolver.make<AcceptUpdate>(Effect.fn("Inbox.acceptBatch")(function*(entries) {
        yield* Effect.annotateCurrentSpan({ updates: entries.length })
        // The same update twice in one batch (a fast retry) is stored once.
        const requests = Arr.dedupeWith(Arr.map(entries, (entry) => entry.request), (a, b) => a.update.updateId === b.update.updateId)
        const updates = requests.map((request) => request.update)
        const fresh = yield* store(requests)
        // Only updates seen for the first time count against their sender's limit, so Telegram's
        // redeliveries (after a 503) do not. A message past the limit is flagged before its chat
        // is woken; a turn already running in that chat may still answer it normally (the limit
        // is a guard against floods, not an exact quota).
        const freshTexts = updates.flatMap((u) => (u._tag === "Message" && fresh.has(u.updateId) ? [u] : []))
        const decisions = yield* limits.consume("updates", freshTexts.map((u) => u.from.id))
        const refused = freshTexts.filter((_, i) => !decisions[i]!.allowed).map((u) => u.updateId)
        if (refused.length > 0) {
          yield* sql`update messages set over_limit = true where update_id in ${sql.in(refused)}`.pipe(
            Effect.mapError(storageOutage)
          )
        }
        // Duplicates wake their chat too: a retry after a failed wake-up then repairs it at once.
        // Each chat's wake-up carries the trace of its first update in the batch.
        const traces = new Map<number, string>()
        for (const { trace, update } of requests) {
          if (update._tag === "Message" && trace !== undefined && !traces.has(update.chat.id)) traces.set(update.chat.id, trace)
        }
        const chats = new Set(updates.flatMap((u) => (u._tag === "Message" ? [u.chat.id] : [])))
        if (chats.size > 0) yield* queue.wake([...chats], traces)
        // Rare kinds act on every delivery, not only the first: each action is idempotent, and a
        // redelivery after a failed one (a 503) must still carry it out.
        for (const u of updates) {
          if (u._tag === "Migration") yield* migration.move(u.fromChatId, u.toChatId)
          else if (u._tag === "StopDraft") yield* stops.fromDraft(u.chatId, u.draftId)
          else if (u._tag === "StopButton") yield* stops.fromButton(u)
        }
        for (const entry of entries) {
          const u = entry.request.update
          const outcome: Acceptance = u._tag === "Ignored" ? "ignored" : fresh.delete(u.updateId) ? "accepted" : "duplicate"
          entry.completeUnsafe(Exit.succeed(outcome))
        }
      })).pipe(RequestResolver.batchN(maxBatch))

      // An update of a shape the bot does not expect is logged once per kind, not once per update.
      const warned = new Set<string>()
      const warnOnce = (update: InboundUpdate) =>
        update._tag !== "Ignored" || update.unexpected !== true || warned.has(update.kind)
          ? Effect.void
          : Effect.sync(() => warned.add(update.kind)).pipe(
            Effect.andThen(Effect.logWarning("an update the bot does not expect, acknowledged and ignored", { kind: update.kind })),
            Effect.annotateLogs({ update_id: update.updateId })
          )

      const outcomes = {
        accepted: Metric.withAttributes(updatesReceived, { outcome: "accepted" }),
        duplicate: Metric.withAttributes(updatesReceived, { outcome: "duplicate" }),
        ignored: Metric.withAttributes(updatesReceived, { outcome: "ignored" })
      }
      return Inbox.of({
        // The one service method without a span of its own: a span per update cost about a tenth
        // of the webhook's CPU per request (BENCHMARKS.md, run F). Each batch is a span instead.
        accept: Effect.fnUntraced(function*(update: InboundUpdate) {
          yield* warnOnce(update)
          const trace = yield* currentTraceparent
          const outcome = yield* Effect.request(new AcceptUpdate({ update, trace }), resolver)
          yield* Metric.update(outcomes[outcome], 1)
          return outcome
        })
      })
    })
  )
}
