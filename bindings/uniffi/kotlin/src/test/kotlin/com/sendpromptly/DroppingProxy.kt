package com.sendpromptly

import java.io.ByteArrayOutputStream
import java.io.InputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

/**
 * An HTTP/1.1 proxy in front of the test server that forwards every request
 * but, for the first `drop` requests whose path starts with `pathPrefix`,
 * closes the client's connection instead of passing the answer on: the
 * server recorded the request, the client never heard back.
 */
class DroppingProxy(private val upstreamPort: Int, private val pathPrefix: String, drop: Int = 1) : AutoCloseable {
    private val listener = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    private val toDrop = AtomicInteger(drop)
    val forwarded = AtomicInteger()
    val dropped = AtomicInteger()
    val url = "http://127.0.0.1:${listener.localPort}"

    init {
        thread(isDaemon = true, name = "dropping-proxy") {
            while (!listener.isClosed) {
                val client = try { listener.accept() } catch (e: Exception) { break }
                thread(isDaemon = true) { serve(client) }
            }
        }
    }

    private fun serve(client: Socket) = client.use {
        val input = client.getInputStream()
        while (true) {
            val request = readMessage(input) ?: return
            val path = String(request, Charsets.ISO_8859_1).substringBefore("\r\n").split(" ").getOrElse(1) { "" }
            val answer = Socket(InetAddress.getLoopbackAddress(), upstreamPort).use { upstream ->
                upstream.getOutputStream().write(request)
                readMessage(upstream.getInputStream()) ?: return
            }
            forwarded.incrementAndGet()
            if (path.startsWith(pathPrefix) && toDrop.getAndDecrement() > 0) {
                dropped.incrementAndGet()
                return // close without answering
            }
            client.getOutputStream().write(answer)
        }
    }

    /** One HTTP message (head and a Content-Length body), or null at end of stream. */
    private fun readMessage(input: InputStream): ByteArray? {
        val head = ByteArrayOutputStream()
        var last4 = 0
        while (true) {
            val b = input.read()
            if (b < 0) return null
            head.write(b)
            last4 = (last4 shl 8) or b
            if (last4 == 0x0d0a0d0a) break
        }
        val text = head.toString(Charsets.ISO_8859_1)
        val length = Regex("(?im)^content-length:\\s*(\\d+)").find(text)?.groupValues?.get(1)?.toInt() ?: 0
        check(!Regex("(?im)^transfer-encoding:\\s*chunked").containsMatchIn(text)) { "chunked bodies are not supported" }
        head.write(input.readNBytes(length))
        return head.toByteArray()
    }

    override fun close() = listener.close()
}
