import { Duration, Effect, Layer, Option, Schedule } from "effect"
import { LemonEvents } from "../../services/billing/LemonEvents.ts"
import { LemonSqueezy } from "../../services/billing/LemonSqueezy.ts"
import { Subscriptions } from "../../services/billing/Subscriptions.ts"
import { AppConfig } from "../../services/platform/AppConfig.ts"

/** One API call at a time, this far apart: about 200 a minute, under LemonSqueezy's 300. */
const pace = Duration.millis(300)

/**
 * Repairs drift from missed webhooks: at start and every RECONCILE_INTERVAL_SECONDS, each
 * subscription not expired yet is fetched from LemonSqueezy's API and its state applied like an
 * event (older never overwrites newer; notices and audit rows as usual); each repair is logged.
 * Subscriptions of the store the bot does not know at all (a creation webhook lost for good, or
 * one made outside the bot) cannot be tied to a Telegram user: they are logged for the operator.
 * Several workers reconciling at once is harmless. Nothing to do with billing off.
 */
export const ReconcilerLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  if (Option.isNone(config.lemonSqueezy)) return
  const subscriptions = yield* Subscriptions
  const lemon = yield* LemonSqueezy
  const events = yield* LemonEvents

  const one = (subscription: { readonly id: string; readonly userId: number }) =>
    lemon.getSubscription(subscription.id).pipe(
      Effect.flatMap((fresh) => events.reconcile(subscription.id, subscription.userId, fresh)),
      Effect.tap(Option.match({
        onNone: () => Effect.void,
        onSome: ({ after, before }) =>
          Effect.logInfo("reconciled a subscription a webhook had not told us about").pipe(
            Effect.annotateLogs({ subscription: subscription.id, from: before, to: after })
          )
      })),
      Effect.catchTag(["LemonSqueezyError", "StorageOutage"], (error) =>
        Effect.logWarning("could not reconcile a subscription", error.message).pipe(
          Effect.annotateLogs({ subscription: subscription.id })
        )),
      Effect.delay(pace)
    )

  const unknown = (known: ReadonlySet<string>) =>
    lemon.listSubscriptions.pipe(
      Effect.map((ids) => ids.filter((id) => !known.has(id))),
      Effect.flatMap((ids) =>
        ids.length === 0 ? Effect.void : Effect.logWarning(
          "LemonSqueezy subscriptions the bot knows nothing of (no user to tie them to): check them in LemonSqueezy"
        ).pipe(Effect.annotateLogs({ count: ids.length, subscriptions: ids.slice(0, 20).join(",") }))
      ),
      Effect.catchTag("LemonSqueezyError", (error) => Effect.logWarning("could not list the store's subscriptions", error.message))
    )

  const reconcile = Effect.gen(function*() {
    const all = (yield* subscriptions.unsettled).filter((s) => s.provider === "lemonsqueezy")
    yield* Effect.forEach(all, one, { discard: true })
    yield* unknown(new Set(yield* subscriptions.known("lemonsqueezy")))
  }).pipe(
    Effect.catchCause((cause) => Effect.logWarning("reconciliation failed, trying again next time", cause)),
    Effect.withSpan("Reconciler.run", { root: true })
  )
  yield* Effect.forkScoped(reconcile.pipe(Effect.repeat(Schedule.spaced(config.reconcileInterval))))
}))
