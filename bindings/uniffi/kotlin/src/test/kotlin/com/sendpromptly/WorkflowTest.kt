package com.sendpromptly

import com.standardwebhooks.Webhook
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.util.Collections

/** Both signals, incidents, repair callbacks, retries and background mode against a real server. */
class WorkflowTest {
    private val sp = TestServer.client()

    @Test
    fun `receipt, duplicate delivery and success`() {
        val id = unique()
        val first = sp.receipt(
            Receipt(
                provider = Provider.STRIPE, eventId = id, eventType = "invoice.paid",
                subject = "cus_kt", effect = "credits.add", metadataJson = """{"credits":500}""",
                occurredAt = "2026-11-22T09:00:00Z",
            ),
        )
        assertTrue(first.created)
        assertEquals(201, first.status)
        assertEquals("awaiting_result", first.eventState)
        assertTrue(first.idempotencyKey!!.startsWith("sp_idem_"))
        assertTrue(first.eventJson.contains("\"credits\":500"), first.eventJson)

        val again = sp.receipt(Receipt(provider = Provider.STRIPE, eventId = id, eventType = "invoice.paid"))
        assertFalse(again.created)

        val done = sp.success(EventRef(Provider.STRIPE, id))
        assertEquals("succeeded", done.eventState)
        assertEquals(null, done.incidentId)
    }

    @Test
    fun `a failure opens an incident, reprocess sends a repair callback that verifies here and with the official library`() {
        RepairReceiver.url // the repair URL is set before the incident exists
        val id = unique()
        sp.receipt(Receipt(Provider.STRIPE, id, "invoice.paid", subject = "cus_kt_repair", metadataJson = """{"credits":7}"""))
        val failed = sp.failure(EventRef(Provider.STRIPE, id), "tenant acct_42 not found")
        assertEquals("failed", failed.eventState)
        assertEquals("open", failed.incidentState)
        val incidentId = failed.incidentId!!

        val asked = sp.reprocess(incidentId, "fixed the tenant mapping")
        val reprocessId = Regex("\"reprocess_id\":\"(rep_[^\"]+)\"").find(asked)!!.groupValues[1]

        val received = RepairReceiver.await(reprocessId)
        val callback = verifyRepairRequest(received.body, received.headers, listOf(TestServer.secret))
        assertEquals(reprocessId, callback.reprocessId())
        assertEquals(incidentId, callback.incidentId())
        assertEquals(id, callback.event().eventId)
        assertEquals("""{"credits":7}""", callback.event().metadataJson)
        assertEquals(EventRef(Provider.STRIPE, id, reprocessId), callback.target())
        // The official Standard Webhooks library accepts the same request.
        Webhook(TestServer.secret).verify(String(received.body), received.headers.mapValues { listOf(it.value) })

        // The receiver reported success for the callback: the incident resolves.
        waitFor("the incident to resolve") {
            sp.getIncident(incidentId).takeIf { it.contains("\"state\":\"resolved\"") }
        }
        assertTrue(sp.getEvent(Provider.STRIPE, id).contains(reprocessId))
    }

    @Test
    fun `a retry after a lost answer is replayed, not recorded twice`() {
        DroppingProxy(java.net.URI(TestServer.url).port, "/v1/receipt").use { proxy ->
            val through = TestServer.client(base = proxy.url)
            val id = unique()
            val answer = through.receipt(Receipt(Provider.SHOPIFY, id, "orders/paid"))
            assertEquals(1, proxy.dropped.get())
            assertEquals(2, answer.attempts)
            assertTrue(answer.replayed, "the second attempt must be a replay of the first")
            assertTrue(answer.created, "the replayed answer is the first one (201)")
            val event = sp.getEvent(Provider.SHOPIFY, id)
            assertTrue(event.contains("\"deliveries\":1"), event)
        }
    }

    @Test
    fun `background mode delivers, reports drops, and drains on close`() {
        val dropped = Collections.synchronizedList(mutableListOf<DroppedSignal>())
        val ids = (1..20).map { unique("evt_kt_bg_") }
        sp.background(
            BackgroundConfig(capacity = 100, concurrency = 2),
            object : DropHandler {
                override fun onDrop(dropped_: DroppedSignal) { dropped.add(dropped_) }
            },
        ).use { background ->
            for (id in ids) {
                assertTrue(background.receipt(Receipt(Provider.CUSTOM, id, "export.run")))
            }
            // Invalid: dropped at once, reported to the handler.
            assertFalse(background.receipt(Receipt(Provider.CUSTOM, "", "export.run")))
        } // close(): drains the queue before returning
        for (id in ids) {
            assertTrue(sp.getEvent(Provider.CUSTOM, id).contains("\"event_id\":\"$id\""))
        }
        assertEquals(1, dropped.size)
        assertEquals(DropReason.INVALID, dropped[0].reason)
        assertEquals("receipt", dropped[0].kind)
    }

    @Test
    fun `background shutdown returns the final counters`() {
        val background = sp.background()
        val id = unique()
        assertTrue(background.receipt(Receipt(Provider.CUSTOM, id, "export.run")))
        assertTrue(background.success(EventRef(Provider.CUSTOM, id)))
        val stats = background.shutdown(10_000L)
        assertEquals(2L, stats.delivered)
        assertEquals(0L, stats.pending)
        assertFalse(background.receipt(Receipt(Provider.CUSTOM, unique(), "export.run")), "closed")
        assertEquals(1L, background.stats().droppedClosed)
        background.close()
    }

    @Test
    fun `suspend functions run concurrently`() = runBlocking {
        val ids = (1..5).map { unique() }
        val answers = ids.map { id -> async { sp.receiptAsync(Receipt(Provider.STRIPE, id, "invoice.paid")) } }.awaitAll()
        assertTrue(answers.all { it.created })
        val results = ids.map { id -> async { sp.failureAsync(EventRef(Provider.STRIPE, id), "boom") } }.awaitAll()
        assertTrue(results.all { it.incidentState == "open" })
    }

    @Test
    fun `errors are typed`() {
        val bad = assertThrows<SendPromptlyException.Api> {
            Client("sp_live_wrong", TestServer.url).receipt(Receipt(Provider.STRIPE, unique(), "invoice.paid"))
        }
        assertEquals(401, bad.status)
        assertNotNull(bad.requestId)
        assertFalse(bad.retryable)

        val invalid = assertThrows<SendPromptlyException.Validation> {
            sp.receipt(Receipt(Provider.STRIPE, "", "invoice.paid"))
        }
        assertEquals("event_id", invalid.param)

        val metadata = assertThrows<SendPromptlyException.Validation> {
            sp.receipt(Receipt(Provider.STRIPE, unique(), "invoice.paid", metadataJson = "[1]"))
        }
        assertEquals("metadata", metadata.param)

        val down = assertThrows<SendPromptlyException.Transport> {
            Client("sp_live_x", "http://127.0.0.1:${TestServer.freePort()}", RetryConfig(maxAttempts = 2, initialBackoffMs = 10L))
                .receipt(Receipt(Provider.STRIPE, unique(), "invoice.paid"))
        }
        assertEquals(TransportReason.CONNECT, down.reason)
        assertEquals(2, down.attempts)

        assertThrows<SendPromptlyException.Configuration> { Client("not_a_key", TestServer.url) }
        assertThrows<SendPromptlyException.Configuration> {
            Client("sp_live_x", TestServer.url, RetryConfig(maxAttempts = 0))
        }
    }

    @Test
    fun `retry configuration has the Rust SDK's fields and defaults`() {
        val defaults = defaultRetryConfig()
        assertEquals(
            RetryConfig(3, 100L, 1_000L, 0.5, 3_000L, 2_000L, RetryOn(true, true, true, true)),
            defaults,
        )
        assertEquals(defaults, sp.retryConfig())
        val patient = sp.withRetry(RetryConfig(totalBudgetMs = 1_500L))
        assertEquals(defaults.copy(totalBudgetMs = 1_500L), patient.retryConfig())
        assertEquals(20, backgroundRetryConfig().maxAttempts)
    }
}
