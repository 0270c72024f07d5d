import { Context, Duration, Effect, flow, Layer, Option, Redacted, Schedule, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest, type HttpClientResponse } from "effect/http"
import {
  decodeApiList,
  decodeApiResource,
  decodeCheckout,
  decodeStore,
  decodeSubscription,
  decodeVariant,
  type SubscriptionAttributes
} from "../../schema/billing/LemonSqueezy.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { retryAfterBackoff } from "../platform/Backoff.ts"

/**
 * The LemonSqueezy API failed after its retries, or billing is off (status -1). `status` is the
 * HTTP status, 0 for a network failure, a timeout or an answer the client could not read.
 */
export class LemonSqueezyError extends Schema.TaggedError<LemonSqueezyError>()("LemonSqueezyError", {
  status: Schema.Number,
  retryAfterSeconds: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/** Longest wait for one API answer: a user is waiting for most of them. */
const callTimeout = Duration.seconds(8)
/** The longest Retry-After sat out (seconds): a user is waiting; the reconciler comes back later anyway. */
const maxRetryAfterSeconds = 5
/** Subscriptions listed per page (LemonSqueezy's most). */
const pageSize = 100

/**
 * 429, 5xx and network failures: 300 ms doubling with jitter, at least Retry-After (capped at
 * 5 s), two retries: a user waits at most about 30 s before hearing "try again later".
 */
export const lemonRetrySchedule = retryAfterBackoff<LemonSqueezyError>({
  base: "300 millis",
  times: 2,
  retryAfterSeconds: (error) =>
    error.retryAfterSeconds === undefined ? undefined : Math.min(error.retryAfterSeconds, maxRetryAfterSeconds)
}).pipe(Schedule.while(({ input }) => input.status === 0 || input.status === 429 || input.status >= 500))

export interface NewCheckout {
  readonly variantId: string
  /** Carried back on every webhook as `meta.custom_data.telegram_user_id` (a string). */
  readonly telegramUserId: number
  /** Where the buyer lands after paying (the bot's t.me link). */
  readonly redirectUrl: string
  readonly expiresAt: Date
}

const billingOff = new LemonSqueezyError({ status: -1, message: "billing is off (no LEMON_API_KEY)" })

/**
 * The LemonSqueezy API (JSON:API, https://docs.lemonsqueezy.com/api) on LEMON_API_URL, with the
 * API key as a bearer token. The official SDK hard-codes its host, so this is a small client of
 * Effect's HttpClient: every call has a 10 s timeout and `lemonRetrySchedule`.
 */
export class LemonSqueezy extends Context.Service<LemonSqueezy, {
  /** POST /v1/checkouts for the store: the checkout's id and URL. */
  readonly createCheckout: (checkout: NewCheckout) => Effect.Effect<{ readonly id: string; readonly url: string }, LemonSqueezyError>
  /** GET /v1/subscriptions/:id: its current attributes (fresh signed portal URLs included). */
  readonly getSubscription: (id: string) => Effect.Effect<SubscriptionAttributes, LemonSqueezyError>
  /** The ids of every subscription of the store (GET /v1/subscriptions, page by page). */
  readonly listSubscriptions: Effect.Effect<ReadonlyArray<string>, LemonSqueezyError>
  /** A variant's price: GET /v1/variants/:id, in the currency of the store (GET /v1/stores/:id). */
  readonly getPrice: (variantId: string) => Effect.Effect<{ readonly cents: number; readonly currency: string; readonly interval: string }, LemonSqueezyError>
}>()("bot/LemonSqueezy") {
  static readonly layer = Layer.effect(
    LemonSqueezy,
    Effect.gen(function*() {
      const config = yield* AppConfig
      if (Option.isNone(config.lemonSqueezy)) {
        return LemonSqueezy.of({
          createCheckout: () => Effect.fail(billingOff),
          getSubscription: () => Effect.fail(billingOff),
          listSubscriptions: Effect.fail(billingOff),
          getPrice: () => Effect.fail(billingOff)
        })
      }
      const lemon = config.lemonSqueezy.value
      const client = (yield* HttpClient.HttpClient).pipe(
        HttpClient.mapRequest(flow(
          HttpClientRequest.prependUrl(`${lemon.apiUrl}/v1`),
          HttpClientRequest.bearerToken(Redacted.value(lemon.apiKey)),
          HttpClientRequest.setHeaders({ accept: "application/vnd.api+json", "content-type": "application/vnd.api+json" })
        ))
      )

      /** The answer's JSON, or LemonSqueezyError with the API's own words. */
      const json = (response: HttpClientResponse.HttpClientResponse) =>
        Effect.gen(function*() {
          const body = yield* response.text
          if (response.status >= 400) {
            const after = Number(response.headers["retry-after"])
            return yield* new LemonSqueezyError({
              status: response.status,
              ...(Number.isFinite(after) ? { retryAfterSeconds: after } : {}),
              message: `LemonSqueezy ${response.status}: ${apiErrorDetail(body)}`
            })
          }
          return yield* Effect.try({ try: () => JSON.parse(body) as unknown, catch: () => unreadable({ message: "not JSON" }) })
        })

      /** One request: a timeout, `lemonRetrySchedule`, and the answer decoded with `decode`. */
      const call = <A, E extends { readonly message: string }>(
        request: HttpClientRequest.HttpClientRequest,
        decode: (json: unknown) => Effect.Effect<A, E>
      ) =>
        client.execute(request).pipe(
          Effect.flatMap(json),
          Effect.flatMap((body) => decode(body).pipe(Effect.mapError(unreadable))),
          Effect.timeoutOrElse({
            duration: callTimeout,
            orElse: () => Effect.fail(new LemonSqueezyError({ status: 0, message: "LemonSqueezy did not answer in time" }))
          }),
          Effect.catchTag("HttpClientError", (error) =>
            Effect.fail(new LemonSqueezyError({ status: 0, message: `LemonSqueezy: ${error.message}` }))),
          Effect.retry(lemonRetrySchedule)
        )

      return LemonSqueezy.of({
        createCheckout: Effect.fn("LemonSqueezy.createCheckout")(function*(checkout: NewCheckout) {
          const created = yield* call(HttpClientRequest.post("/checkouts").pipe(HttpClientRequest.bodyJsonUnsafe({
            data: {
              type: "checkouts",
              attributes: {
                checkout_data: { custom: { telegram_user_id: String(checkout.telegramUserId) } },
                product_options: { redirect_url: checkout.redirectUrl },
                expires_at: checkout.expiresAt.toISOString()
              },
              relationships: {
                store: { data: { type: "stores", id: lemon.storeId } },
                variant: { data: { type: "variants", id: checkout.variantId } }
              }
            }
          })), decodeApiResource)
          const attributes = yield* decodeCheckout(created.data.attributes).pipe(Effect.mapError(unreadable))
          return { id: created.data.id, url: attributes.url }
        }),
        getSubscription: Effect.fn("LemonSqueezy.getSubscription")(function*(id: string) {
          const found = yield* call(HttpClientRequest.get(`/subscriptions/${encodeURIComponent(id)}`), decodeApiResource)
          return yield* decodeSubscription(found.data.attributes).pipe(Effect.mapError(unreadable))
        }),
        listSubscriptions: Effect.gen(function*() {
          const ids: Array<string> = []
          for (let page = 1, last = 1; page <= last; page++) {
            const list = yield* call(
              HttpClientRequest.get("/subscriptions").pipe(HttpClientRequest.setUrlParams({
                "filter[store_id]": lemon.storeId,
                "page[number]": String(page),
                "page[size]": String(pageSize)
              })),
              decodeApiList
            )
            ids.push(...list.data.map((item) => item.id))
            last = list.meta?.page?.lastPage ?? page
          }
          return ids
        }).pipe(Effect.withSpan("LemonSqueezy.listSubscriptions")),
        getPrice: Effect.fn("LemonSqueezy.getPrice")(function*(variantId: string) {
          const variant = yield* call(HttpClientRequest.get(`/variants/${encodeURIComponent(variantId)}`), decodeApiResource)
          const store = yield* call(HttpClientRequest.get(`/stores/${encodeURIComponent(lemon.storeId)}`), decodeApiResource)
          const price = yield* decodeVariant(variant.data.attributes).pipe(Effect.mapError(unreadable))
          const { currency } = yield* decodeStore(store.data.attributes).pipe(Effect.mapError(unreadable))
          return { cents: price.price, currency, interval: price.interval ?? "month" }
        })
      })
    })
  ).pipe(Layer.provide(FetchHttpClient.layer))
}

const unreadable = (error: { readonly message: string }) =>
  new LemonSqueezyError({ status: 0, message: `LemonSqueezy answered something unreadable: ${error.message}` })

/** JSON:API errors: `{ errors: [{ detail, title }] }`; anything else, its first 200 characters. */
const apiErrorDetail = (body: string): string => {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ detail?: string; title?: string }> }
    const first = parsed.errors?.[0]
    if (first) return first.detail ?? first.title ?? "error"
  } catch {
    // not JSON: fall through
  }
  return body.slice(0, 200)
}
