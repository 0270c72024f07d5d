import { connect, createServer, type Server, type Socket } from "node:net"
import type { AddressInfo } from "node:net"

/**
 * A loopback TCP proxy in front of Postgres or Redis, so a test can take the service away from
 * the app (cut: drop every connection and refuse new ones) and bring it back, without touching
 * the real server other tests use.
 */
export class TcpProxy {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #up = true

  private constructor(server: Server) {
    this.#server = server
  }

  static async start(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
    const server = createServer()
    const proxy = new TcpProxy(server)
    server.on("connection", (client) => proxy.#accept(client, targetPort, targetHost))
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    return proxy
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port
  }

  cut(): void {
    this.#up = false
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
  }

  restore(): void {
    this.#up = true
  }

  async close(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #accept(client: Socket, port: number, host: string): void {
    if (!this.#up) {
      client.destroy()
      return
    }
    const upstream = connect(port, host)
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket)
      socket.on("error", () => undefined)
      socket.on("close", () => {
        this.#sockets.delete(socket)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  }
}
