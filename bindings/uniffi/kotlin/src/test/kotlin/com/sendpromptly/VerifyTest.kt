package com.sendpromptly

import com.standardwebhooks.Webhook
import com.standardwebhooks.exceptions.WebhookVerificationException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.util.Base64
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import com.stripe.exception.SignatureVerificationException as StripeSignatureException
import com.stripe.net.Webhook as StripeWebhook

/** Our verifiers against the official libraries, on the same inputs. */
class VerifyTest {
    companion object {
        /** One repair callback produced by the real server. */
        val callback: Received by lazy {
            val sp = TestServer.client()
            RepairReceiver.url
            val id = unique()
            sp.receipt(Receipt(Provider.STRIPE, id, "invoice.paid"))
            val incident = sp.failure(EventRef(Provider.STRIPE, id), "boom").incidentId!!
            val reprocessId = Regex("\"reprocess_id\":\"(rep_[^\"]+)\"").find(sp.reprocess(incident))!!.groupValues[1]
            RepairReceiver.await(reprocessId)
        }

        const val STRIPE_SECRET = "whsec_test_kotlin_interop"
        val STRIPE_EVENT = """{"id":"evt_1KtInterop","object":"event","type":"invoice.paid","created":1790000000,""" +
            """"livemode":false,"api_version":"2025-07-30.basil","data":{"object":{"id":"in_1","object":"invoice",""" +
            """"customer":"cus_9s8d7f","amount_paid":500,"currency":"usd","status":"paid"}}}"""
    }

    private fun official(secret: String, body: ByteArray, headers: Map<String, String>) =
        Webhook(secret).verify(String(body), headers.mapValues { listOf(it.value) })

    @Test
    fun `a server-made repair callback verifies with ours and the official library`() {
        val cb = verifyRepairRequest(callback.body, callback.headers, listOf(TestServer.secret))
        assertEquals(callback.headers["webhook-id"], cb.reprocessId())
        official(TestServer.secret, callback.body, callback.headers)
        // Header names in any case, and a rotation's two secrets.
        val upper = callback.headers.mapKeys { it.key.uppercase() }
        verifyRepairRequest(callback.body, upper, listOf("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", TestServer.secret))
    }

    @Test
    fun `a tampered body is refused by both`() {
        val tampered = String(callback.body).replace("invoice.paid", "invoice.paie").toByteArray()
        val err = assertThrows<SignatureVerificationException.BadSignature> {
            verifyRepairRequest(tampered, callback.headers, listOf(TestServer.secret))
        }
        assertEquals("sendpromptly", err.provider)
        assertEquals("no_matching_signature", err.code)
        assertThrows<WebhookVerificationException> { official(TestServer.secret, tampered, callback.headers) }
    }

    @Test
    fun `a wrong secret is refused by both`() {
        val wrong = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        assertThrows<SignatureVerificationException.BadSignature> {
            verifyRepairRequest(callback.body, callback.headers, listOf(wrong))
        }
        assertThrows<WebhookVerificationException> { official(wrong, callback.body, callback.headers) }
        assertThrows<SignatureVerificationException.SecretConfiguration> {
            verifyRepairRequest(callback.body, callback.headers, listOf())
        }
    }

    @Test
    fun `a stale timestamp is refused by both`() {
        val stale = System.currentTimeMillis() / 1000 - 600
        val id = callback.headers.getValue("webhook-id")
        val headers = mapOf(
            "webhook-id" to id,
            "webhook-timestamp" to stale.toString(),
            "webhook-signature" to Webhook(TestServer.secret).sign(id, stale, String(callback.body)),
        )
        val err = assertThrows<SignatureVerificationException.StaleTimestamp> {
            verifyRepairRequest(callback.body, headers, listOf(TestServer.secret))
        }
        assertEquals("timestamp_too_old", err.code)
        assertThrows<WebhookVerificationException> { official(TestServer.secret, callback.body, headers) }
        // Fresh, signed by the official library: accepted by ours.
        val now = System.currentTimeMillis() / 1000
        val fresh = headers + mapOf(
            "webhook-timestamp" to now.toString(),
            "webhook-signature" to Webhook(TestServer.secret).sign(id, now, String(callback.body)),
        )
        verifyRepairRequest(callback.body, fresh, listOf(TestServer.secret))
    }

    private fun stripeHeader(payload: String, secret: String = STRIPE_SECRET, t: Long = System.currentTimeMillis() / 1000) =
        StripeWebhook.Signature.generateSignatureHeader(payload, secret, t)

    @Test
    fun `stripe verification agrees with stripe-java on valid events`() {
        val header = stripeHeader(STRIPE_EVENT)
        assertEquals("evt_1KtInterop", StripeWebhook.constructEvent(STRIPE_EVENT, header, STRIPE_SECRET).id)
        val event = stripeVerify(STRIPE_EVENT.toByteArray(), header, STRIPE_SECRET)
        assertEquals("evt_1KtInterop", event.id())
        assertEquals("invoice.paid", event.eventType())
        val receipt = event.toReceipt()
        assertEquals(Provider.STRIPE, receipt.provider)
        assertEquals("cus_9s8d7f", receipt.subject)
        assertTrue(receipt.metadataJson!!.contains("500"), receipt.metadataJson)
        assertEquals(EventRef(Provider.STRIPE, "evt_1KtInterop"), event.target())
    }

    @Test
    fun `stripe verification agrees with stripe-java on refused events`() {
        val now = System.currentTimeMillis() / 1000
        data class Case(val payload: String, val header: String, val secret: String, val expect: Class<out SignatureVerificationException>, val code: String)
        val cases = listOf(
            Case(STRIPE_EVENT.replace("500", "50000"), stripeHeader(STRIPE_EVENT), STRIPE_SECRET,
                SignatureVerificationException.BadSignature::class.java, "no_matching_signature"),
            Case(STRIPE_EVENT, stripeHeader(STRIPE_EVENT, t = now - 600), STRIPE_SECRET,
                SignatureVerificationException.StaleTimestamp::class.java, "timestamp_outside_tolerance"),
            Case(STRIPE_EVENT, stripeHeader(STRIPE_EVENT), "whsec_other",
                SignatureVerificationException.BadSignature::class.java, "no_matching_signature"),
            Case(STRIPE_EVENT, stripeHeader(STRIPE_EVENT).replace("v1=", "v0="), STRIPE_SECRET,
                SignatureVerificationException.BadSignature::class.java, "no_v1_signature"),
            Case(STRIPE_EVENT, "garbage", STRIPE_SECRET,
                SignatureVerificationException.Malformed::class.java, "malformed_header"),
        )
        for (case in cases) {
            assertThrows<StripeSignatureException>(case.toString()) {
                StripeWebhook.constructEvent(case.payload, case.header, case.secret)
            }
            val err = assertThrows<SignatureVerificationException>(case.toString()) {
                stripeVerify(case.payload.toByteArray(), case.header, case.secret)
            }
            assertEquals(case.expect, err.javaClass, case.toString())
            val code = when (err) {
                is SignatureVerificationException.BadSignature -> err.code
                is SignatureVerificationException.StaleTimestamp -> err.code
                is SignatureVerificationException.Malformed -> err.code
                is SignatureVerificationException.SecretConfiguration -> err.code
            }
            assertEquals(case.code, code, case.toString())
        }
    }

    @Test
    fun `shopify deliveries verify and fill a receipt`() {
        val secret = "shpss_kotlin"
        val body = """{"id":820982911946154508,"customer":{"id":115310627314723954},"total_price":"10.00","currency":"USD"}"""
        val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(secret.toByteArray(), "HmacSHA256")) }
        val headers = mapOf(
            "X-Shopify-Hmac-Sha256" to Base64.getEncoder().encodeToString(mac.doFinal(body.toByteArray())),
            "X-Shopify-Topic" to "orders/paid",
            "X-Shopify-Shop-Domain" to "example.myshopify.com",
            "X-Shopify-Webhook-Id" to "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-Event-Id" to "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "X-Shopify-API-Version" to "2025-07",
        )
        val delivery = shopifyVerify(body.toByteArray(), headers, listOf(secret))
        assertEquals("orders/paid", delivery.topic())
        assertEquals("98880550-7158-44d4-b7cd-2c97c8a091b5", delivery.dedupeId())
        assertEquals(Provider.SHOPIFY, delivery.toReceipt().provider)
        assertEquals("orders/paid", delivery.toReceipt().eventType)
        assertThrows<SignatureVerificationException.BadSignature> {
            shopifyVerify(body.replace("10.00", "0.01").toByteArray(), headers, listOf(secret))
        }
    }
}
