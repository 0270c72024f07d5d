/**
 * A fake LemonSqueezy API (JSON:API) on loopback, for the real client to talk to over HTTP:
 * `POST /v1/checkouts` (checked like LemonSqueezy checks it, recorded, answered with a checkout
 * URL), `GET /v1/subscriptions/:id` and `GET /v1/subscriptions?filter[store_id]=` (what the test
 * put there, 2 a page), `GET /v1/variants/:id` and `GET /v1/stores/:id` (prices, in EUR). Bearer
 * key checked; scripted faults (5xx, 429 with Retry-After, a hang).
 */
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { closeServer, listenOnLoopback } from "./LoopbackServer.ts"

/** A checkout as the bot asked for it. */
export interface CheckoutRequest {
  readonly id: string
  readonly storeId: string
  readonly variantId: string
  readonly custom: Readonly<Record<string, unknown>>
  readonly redirectUrl: string | undefined
  readonly expiresAt: string | undefined
}

export type LemonFault = { readonly status: 429; readonly retryAfter: number } | { readonly status: 500 | 503 } | { readonly hang: true }

const jsonApi = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/vnd.api+json" }).end(JSON.stringify(body))
}
const apiError = (res: ServerResponse, status: number, detail: string, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/vnd.api+json", ...headers })
    .end(JSON.stringify({ errors: [{ status: String(status), title: "Error", detail }] }))
}

export class FakeLemonSqueezy {
  readonly checkouts: Array<CheckoutRequest> = []
  /** Every request's method and path, in order. */
  readonly requests: Array<string> = []
  readonly #subscriptions = new Map<string, Record<string, unknown>>()
  readonly #prices = new Map<string, { readonly price: number; readonly interval: string }>()
  #faults: Array<{ readonly fault: LemonFault; readonly request: string }> = []
  readonly #server: Server
  url = ""

  readonly apiKey: string

  constructor(apiKey: string) {
    this.apiKey = apiKey
    this.#server = createServer((req, res) => void this.#handle(req, res))
  }

  static async start(apiKey: string): Promise<FakeLemonSqueezy> {
    const fake = new FakeLemonSqueezy(apiKey)
    fake.url = await listenOnLoopback(fake.#server)
    return fake
  }

  /** What `GET /v1/subscriptions/:id` answers from now on. */
  setSubscription(id: string, attributes: Record<string, unknown>): void {
    this.#subscriptions.set(id, attributes)
  }

  /** What `GET /v1/variants/:id` answers: a price in cents (EUR) a month. */
  setPrice(variantId: string, cents: number): void {
    this.#prices.set(variantId, { price: cents, interval: "month" })
  }

  /** The next `times` requests starting with `request` ("POST /v1/checkouts"; default: any) fail with `fault`. */
  failNext(fault: LemonFault, times = 1, request = ""): void {
    for (let i = 0; i < times; i++) this.#faults.push({ fault, request })
  }

  reset(): void {
    this.checkouts.length = 0
    this.requests.length = 0
    this.#subscriptions.clear()
    this.#prices.clear()
    this.#faults = []
  }

  close(): Promise<void> {
    return closeServer(this.#server)
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = ""
    for await (const chunk of req) body += String(chunk)
    const path = new URL(req.url ?? "/", "http://fake").pathname
    this.requests.push(`${req.method} ${path}`)
    if (req.headers.authorization !== `Bearer ${this.apiKey}`) return apiError(res, 401, "Unauthenticated.")
    const index = this.#faults.findIndex((f) => `${req.method} ${path}`.startsWith(f.request))
    const fault = index >= 0 ? this.#faults.splice(index, 1)[0]!.fault : undefined
    if (fault !== undefined) {
      if ("hang" in fault) return // until the client gives up
      return apiError(res, fault.status, "Fake outage", fault.status === 429 ? { "retry-after": String(fault.retryAfter) } : {})
    }
    const query = new URL(req.url ?? "/", "http://fake").searchParams
    if (req.method === "GET" && path === "/v1/subscriptions") return this.#list(query, res)
    const variant = /^\/v1\/variants\/([^/]+)$/.exec(path)
    if (req.method === "GET" && variant) {
      const price = this.#prices.get(variant[1]!)
      if (price === undefined) return apiError(res, 404, "Not found.")
      return jsonApi(res, 200, { data: { type: "variants", id: variant[1], attributes: price } })
    }
    if (req.method === "GET" && /^\/v1\/stores\/[^/]+$/.test(path)) {
      return jsonApi(res, 200, { data: { type: "stores", id: path.split("/").at(-1), attributes: { currency: "EUR" } } })
    }
    const subscription = /^\/v1\/subscriptions\/([^/]+)$/.exec(path)
    if (req.method === "GET" && subscription) {
      const attributes = this.#subscriptions.get(decodeURIComponent(subscription[1]!))
      if (attributes === undefined) return apiError(res, 404, "Not found.")
      return jsonApi(res, 200, { data: { type: "subscriptions", id: subscription[1], attributes } })
    }
    if (req.method === "POST" && path === "/v1/checkouts") return this.#checkout(body, res)
    apiError(res, 404, "Not found.")
  }

  /** Two a page, so that paging is exercised. */
  #list(query: URLSearchParams, res: ServerResponse): void {
    if (!query.get("filter[store_id]")) return apiError(res, 422, "filter[store_id] is required here.")
    const size = 2
    const page = Number(query.get("page[number]") ?? 1)
    const ids = [...this.#subscriptions.keys()]
    const lastPage = Math.max(1, Math.ceil(ids.length / size))
    jsonApi(res, 200, {
      meta: { page: { currentPage: page, lastPage, perPage: size, total: ids.length } },
      data: ids.slice((page - 1) * size, page * size).map((id) => ({ type: "subscriptions", id, attributes: this.#subscriptions.get(id) }))
    })
  }

  #checkout(body: string, res: ServerResponse): void {
    let parsed: {
      data?: {
        type?: string
        attributes?: { checkout_data?: { custom?: Record<string, unknown> }; product_options?: { redirect_url?: string }; expires_at?: string }
        relationships?: { store?: { data?: { id?: string } }; variant?: { data?: { id?: string } } }
      }
    }
    try {
      parsed = JSON.parse(body)
    } catch {
      return apiError(res, 400, "The JSON is malformed.")
    }
    const data = parsed.data
    const storeId = data?.relationships?.store?.data?.id
    const variantId = data?.relationships?.variant?.data?.id
    if (data?.type !== "checkouts" || typeof storeId !== "string" || typeof variantId !== "string") {
      return apiError(res, 422, "A checkout needs type checkouts and a store and a variant (string ids).")
    }
    const custom = data.attributes?.checkout_data?.custom ?? {}
    for (const [key, value] of Object.entries(custom)) {
      if (typeof value !== "string") return apiError(res, 422, `custom data ${key} must be a string`)
    }
    const id = randomUUID()
    const checkout: CheckoutRequest = {
      id,
      storeId,
      variantId,
      custom,
      redirectUrl: data.attributes?.product_options?.redirect_url,
      expiresAt: data.attributes?.expires_at
    }
    this.checkouts.push(checkout)
    jsonApi(res, 201, {
      data: {
        type: "checkouts",
        id,
        attributes: { url: `https://fake.lemonsqueezy.test/checkout/custom/${id}`, expires_at: checkout.expiresAt ?? null }
      }
    })
  }
}
