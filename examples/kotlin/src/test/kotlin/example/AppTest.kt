package example

import com.sendpromptly.Client
import com.sendpromptly.Provider
import com.stripe.net.Webhook
import io.ktor.server.cio.CIO
import io.ktor.server.engine.embeddedServer
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.net.ServerSocket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse

/**
 * The app end to end against a real server (scripts/test-uniffi.sh starts it
 * and sets SENDPROMPTLY_URL, SENDPROMPTLY_API_KEY, SENDPROMPTLY_SIGNING_SECRET):
 * a paid invoice for an unknown customer opens an incident; once the account
 * exists, Reprocess calls the repair endpoint, which applies the credits and
 * resolves it.
 */
class AppTest {
    private val stripeSecret = "whsec_example_ktor"
    private val http = HttpClient.newHttpClient()

    private fun post(url: String, body: String, headers: Map<String, String>): HttpResponse<String> {
        val request = HttpRequest.newBuilder(URI(url)).POST(HttpRequest.BodyPublishers.ofString(body))
        headers.forEach { (k, v) -> request.header(k, v) }
        return http.send(request.build(), HttpResponse.BodyHandlers.ofString())
    }

    private fun <T : Any> waitFor(what: String, check: () -> T?): T {
        val deadline = System.currentTimeMillis() + 20_000
        while (true) {
            check()?.let { return it }
            check(System.currentTimeMillis() < deadline) { "timed out waiting for $what" }
            Thread.sleep(100)
        }
    }

    @Test
    fun `paid, failed for an unknown customer, repaired`() {
        val sp = Client()
        val credits = Credits().apply { knownCustomers += "cus_known" }
        val port = ServerSocket(0).use { it.localPort }
        val app = embeddedServer(CIO, port = port, host = "127.0.0.1") {
            credits(sp, stripeSecret, System.getenv("SENDPROMPTLY_SIGNING_SECRET"), credits)
        }.start(wait = false)
        try {
            val base = "http://127.0.0.1:$port"
            sp.updateProject("""{"repair_url":"$base/sendpromptly/repair"}""")
            val suffix = System.nanoTime()

            fun invoice(id: String, customer: String) = """{"id":"$id","object":"event","type":"invoice.paid",""" +
                """"created":1790000000,"livemode":false,"data":{"object":{"id":"in_$id","object":"invoice",""" +
                """"customer":"$customer","amount_paid":500,"currency":"usd","status":"paid"}}}"""

            // A known customer: receipt and success.
            val ok = invoice("evt_kt_ok_$suffix", "cus_known")
            val signed = mapOf("Stripe-Signature" to Webhook.Signature.generateSignatureHeader(ok, stripeSecret, System.currentTimeMillis() / 1000))
            assertEquals(200, post("$base/webhooks/stripe", ok, signed).statusCode())
            assertEquals(500L, credits.balances["cus_known"])
            assertTrue(sp.getEvent(Provider.STRIPE, "evt_kt_ok_$suffix").contains("\"state\":\"succeeded\""))

            // A forged one is refused.
            assertEquals(400, post("$base/webhooks/stripe", ok.replace("500", "5000"), signed).statusCode())

            // An unknown customer: failure, incident.
            val lateId = "evt_kt_late_$suffix"
            val late = invoice(lateId, "cus_late_$suffix")
            val header = Webhook.Signature.generateSignatureHeader(late, stripeSecret, System.currentTimeMillis() / 1000)
            assertEquals(200, post("$base/webhooks/stripe", late, mapOf("Stripe-Signature" to header)).statusCode())
            val event = sp.getEvent(Provider.STRIPE, lateId)
            assertTrue(event.contains("\"state\":\"failed\""), event)
            val incident = Regex("\"incident_id\":\"(inc_[^\"]+)\"").find(event)!!.groupValues[1]

            // The account now exists; Reprocess → repair endpoint → success → resolved.
            credits.knownCustomers += "cus_late_$suffix"
            sp.reprocess(incident, "account created")
            waitFor("the incident to resolve") { sp.getIncident(incident).takeIf { it.contains("\"resolution\":\"success_result\"") } }
            assertEquals(500L, credits.balances["cus_late_$suffix"])
        } finally {
            app.stop(100, 1000)
        }
    }
}
