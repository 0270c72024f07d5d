import { isIP } from "node:net"
import { Option } from "effect"

/** Loopback and private networks: a proxy there (Caddy beside the bot) is trusted to say who called. */
const trustedProxy = /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|::1$|::ffff:(127|10)\.|f[cd][0-9a-f]{2}:)/i

/**
 * The address a request came from: the socket's peer, or, when that peer is a proxy on the same
 * host or a private network, the last address in X-Forwarded-For (the one that proxy appended;
 * Caddy replaces the header it receives). Anything but an IP address there is ignored.
 */
export const clientAddress = (request: {
  readonly remoteAddress: Option.Option<string>
  readonly headers: Readonly<Record<string, string | undefined>>
}): string => {
  const peer = Option.getOrElse(request.remoteAddress, () => "unknown")
  if (!trustedProxy.test(peer)) return peer
  const last = request.headers["x-forwarded-for"]?.split(",").at(-1)?.trim()
  return last !== undefined && isIP(last) !== 0 ? last : peer
}
