import { Option } from "effect"
import type { HttpServerRequest } from "effect/http"

/** Loopback and private networks: a proxy there (Caddy beside the bot) is trusted to say who called. */
const trustedProxy = /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|::1$|::ffff:127\.|f[cd][0-9a-f]{2}:)/i

/**
 * The address a request came from: the socket's peer, or, when that peer is a proxy on the same
 * host or private network, the address it appended last to X-Forwarded-For (Caddy replaces the
 * header it receives, so a client cannot choose it).
 */
export const clientAddress = (request: HttpServerRequest.HttpServerRequest): string => {
  const peer = Option.getOrElse(request.remoteAddress, () => "unknown")
  if (!trustedProxy.test(peer)) return peer
  const forwarded = request.headers["x-forwarded-for"]?.split(",").map((part) => part.trim()).filter((part) => part.length > 0)
  return forwarded?.at(-1) ?? peer
}
