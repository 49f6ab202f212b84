package com.sendpromptly

import com.sun.net.httpserver.HttpServer
import java.io.File
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit

/** A real `sendpromptly serve` on a loopback port with a temp SQLite file, shared by the tests. */
object TestServer {
    val url: String
    val apiKey: String
    val secret: String
    private val process: Process

    init {
        val binary = System.getenv("SENDPROMPTLY_BIN")
            ?: error("SENDPROMPTLY_BIN is not set: scripts/test-uniffi.sh sets it to the built server binary")
        check(File(binary).canExecute()) { "server binary $binary not found" }
        val work = Files.createTempDirectory("sendpromptly-kt-").toFile()
        val port = freePort()
        val log = File(work, "serve.out")
        val builder = ProcessBuilder(
            binary, "serve",
            "--listen", "127.0.0.1:$port",
            "--database-url", "sqlite://${File(work, "sendpromptly.db")}",
            "--allow-private-urls",
            "--sweep-interval-ms", "200",
            "--callback-retry-delays", "1,1,1",
        ).redirectErrorStream(true).redirectOutput(log)
        builder.environment().apply {
            putIfAbsent("SENDPROMPTLY_LOG", "warn")
            remove("SENDPROMPTLY_API_KEY"); remove("SENDPROMPTLY_URL"); remove("SENDPROMPTLY_CONFIG")
        }
        process = builder.start()
        Runtime.getRuntime().addShutdownHook(Thread { process.destroy() })
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
        var key: String? = null
        var whsec: String? = null
        while (System.nanoTime() < deadline) {
            val text = if (log.exists()) log.readText() else ""
            key = Regex("""(?m)^\s*API key:\s*(sp_\S+)""").find(text)?.groupValues?.get(1)
            whsec = Regex("""(?m)^\s*signing secret:\s*(whsec_\S+)""").find(text)?.groupValues?.get(1)
            if (key != null && whsec != null && text.contains("listening on")) break
            check(process.isAlive) { "sendpromptly serve exited:\n$text" }
            Thread.sleep(100)
        }
        url = "http://127.0.0.1:$port"
        apiKey = key ?: error("sendpromptly serve did not start:\n${log.readText()}")
        secret = whsec!!
    }

    fun client(retry: RetryConfig? = null, base: String = url) = Client(apiKey, base, retry)

    fun freePort(): Int = ServerSocket(0).use { it.localPort }
}

fun unique(prefix: String = "evt_kt_") = prefix + newIdempotencyKey().removePrefix("sp_idem_")

fun <T : Any> waitFor(what: String, timeoutMs: Long = 20_000, check: () -> T?): T {
    val deadline = System.currentTimeMillis() + timeoutMs
    while (true) {
        check()?.let { return it }
        if (System.currentTimeMillis() > deadline) throw AssertionError("timed out waiting for $what")
        Thread.sleep(100)
    }
}

/** A request the repair receiver got: raw body and headers (lower-case names). */
class Received(val body: ByteArray, val headers: Map<String, String>)

/**
 * A repair endpoint on loopback (the JDK's HttpServer): records every
 * request, verifies it with [verifyRepairRequest] and reports success for it.
 */
object RepairReceiver {
    val received = LinkedBlockingQueue<Received>()
    val url: String
    private val reporter = TestServer.client()

    init {
        val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
        server.createContext("/sendpromptly/repair") { exchange ->
            val body = exchange.requestBody.readAllBytes()
            val headers = exchange.requestHeaders.entries.associate { (k, v) -> k.lowercase() to v.first() }
            received.add(Received(body, headers))
            val status = try {
                val callback = verifyRepairRequest(body, headers, listOf(TestServer.secret))
                reporter.success(callback.target(), """{"repaired_by":"junit"}""")
                200
            } catch (e: SignatureVerificationException) {
                400
            }
            exchange.sendResponseHeaders(status, -1)
            exchange.close()
        }
        server.start()
        url = "http://127.0.0.1:${server.address.port}/sendpromptly/repair"
        reporter.updateProject("""{"repair_url": "$url"}""")
    }

    /** The callback of reprocess `reprocessId`, as received. */
    fun await(reprocessId: String): Received = waitFor("the repair callback $reprocessId") {
        received.firstOrNull { it.headers["webhook-id"] == reprocessId }
    }
}

fun httpGet(url: String): HttpResponse<String> =
    HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI(url)).build(), HttpResponse.BodyHandlers.ofString())
