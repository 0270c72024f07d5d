import { Effect, Layer, Option, Schedule } from "effect"
import { LemonEvents } from "../../services/billing/LemonEvents.ts"
import { LemonSqueezy } from "../../services/billing/LemonSqueezy.ts"
import { Subscriptions } from "../../services/billing/Subscriptions.ts"
import { AppConfig } from "../../services/platform/AppConfig.ts"

/** Subscriptions fetched at once from the API. */
const concurrency = 4

/**
 * Repairs drift from missed webhooks: at start and every RECONCILE_INTERVAL_SECONDS, each
 * subscription not expired yet is fetched from LemonSqueezy's API and its state applied like an
 * event (older never overwrites newer; notices and audit rows as usual); each repair is logged.
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
        ))
    )

  const reconcile = subscriptions.unsettled.pipe(
    Effect.flatMap((all) =>
      Effect.forEach(all.filter((s) => s.provider === "lemonsqueezy"), one, { concurrency, discard: true })
    ),
    Effect.catchTag("StorageOutage", (error) => Effect.logWarning("reconciliation skipped", error.message)),
    Effect.withSpan("Reconciler.run", { root: true })
  )
  yield* Effect.forkScoped(reconcile.pipe(Effect.repeat(Schedule.spaced(config.reconcileInterval))))
}))
