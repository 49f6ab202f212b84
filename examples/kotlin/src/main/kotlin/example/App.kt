// A Ktor app whose Stripe webhook handler adds credits, instrumented with
// SendPromptly's two signals, and the repair endpoint SendPromptly calls when
// someone asks to reprocess a failed or missing result.
//
//   export STRIPE_WEBHOOK_SECRET=whsec_…          # from the Stripe dashboard / CLI
//   export SENDPROMPTLY_API_KEY=sp_live_…          # printed by `sendpromptly serve`
//   export SENDPROMPTLY_URL=http://127.0.0.1:7700
//   export SENDPROMPTLY_SIGNING_SECRET=whsec_…     # printed by `sendpromptly serve`
//   mvn -q exec:java -Dexec.mainClass=example.AppKt   (or run main() from the IDE)
//
// and set the project's repair URL to http://127.0.0.1:8080/sendpromptly/repair.
package example

import com.sendpromptly.Client
import com.sendpromptly.SendPromptlyException
import com.sendpromptly.SignatureVerificationException
import com.sendpromptly.stripeVerify
import com.sendpromptly.verifyRepairRequest
import io.ktor.http.ContentType
import io.ktor.http.HttpStatusCode
import io.ktor.server.application.Application
import io.ktor.server.cio.CIO
import io.ktor.server.engine.embeddedServer
import io.ktor.server.request.receive
import io.ktor.server.response.respondText
import io.ktor.server.routing.post
import io.ktor.server.routing.routing
import java.util.concurrent.ConcurrentHashMap
import java.util.logging.Logger

private val log = Logger.getLogger("credits")

/** The business effect: credits per Stripe customer, applied once per event id. */
class Credits {
    val balances = ConcurrentHashMap<String, Long>()
    val knownCustomers: MutableSet<String> = ConcurrentHashMap.newKeySet()
    private val applied: MutableSet<String> = ConcurrentHashMap.newKeySet()

    /** Applies the effect; returns why it failed, or null. */
    fun add(eventId: String, customer: String?, amount: Long): String? {
        if (customer == null || customer !in knownCustomers) return "no account for customer $customer"
        if (applied.add(eventId)) balances.merge(customer, amount, Long::plus)
        return null
    }
}

private val amountPaid = Regex("\"amount_paid\"\\s*:\\s*(\\d+)")
private val creditsField = Regex("\"credits\"\\s*:\\s*(\\d+)")

fun Application.credits(sp: Client, stripeSecret: String, signingSecret: String, credits: Credits) {
    routing {
        post("/webhooks/stripe") {
            val body = call.receive<ByteArray>()
            val event = try {
                stripeVerify(body, call.request.headers["Stripe-Signature"] ?: "", stripeSecret)
            } catch (e: SignatureVerificationException) {
                return@post call.respondText(e.message ?: "bad signature", status = HttpStatusCode.BadRequest)
            }
            if (event.eventType() != "invoice.paid") return@post call.respondText("""{"ignored":true}""", ContentType.Application.Json)
            val amount = amountPaid.find(event.objectJson())?.groupValues?.get(1)?.toLong() ?: 0
            val receipt = event.toReceipt().copy(effect = "credits.add", metadataJson = """{"credits":$amount}""")

            // 1. Receipt (suspend: the handler's thread is free while it waits).
            //    Never fail the webhook because SendPromptly is down.
            try { sp.receiptAsync(receipt) } catch (e: SendPromptlyException) { log.warning("receipt not recorded: ${e.message}") }

            // 2. The business effect, then the result.
            val failure = credits.add(event.id(), receipt.subject, amount)
            try {
                if (failure == null) sp.successAsync(event.target()) else sp.failureAsync(event.target(), failure)
            } catch (e: SendPromptlyException) {
                log.warning("result not recorded: ${e.message}")
            }
            call.respondText("""{"received":true}""", ContentType.Application.Json)
        }

        post("/sendpromptly/repair") {
            val body = call.receive<ByteArray>()
            val headers = call.request.headers.entries().associate { (name, values) -> name to values.first() }
            val callback = try {
                verifyRepairRequest(body, headers, listOf(signingSecret))
            } catch (e: SignatureVerificationException) {
                return@post call.respondText(e.message ?: "bad signature", status = HttpStatusCode.BadRequest)
            }
            // Process the event again (idempotently) from what its receipt said.
            val event = callback.event()
            val amount = event.metadataJson?.let { creditsField.find(it)?.groupValues?.get(1)?.toLong() } ?: 0
            val failure = credits.add(event.eventId, event.subject, amount)
            try {
                // target(): the event and this reprocess id, so the result resolves the incident.
                if (failure == null) sp.successAsync(callback.target()) else sp.failureAsync(callback.target(), failure)
            } catch (e: SendPromptlyException) {
                // Not recorded: let SendPromptly deliver the callback again.
                return@post call.respondText("result not recorded", status = HttpStatusCode.ServiceUnavailable)
            }
            call.respondText("""{"repaired":${failure == null}}""", ContentType.Application.Json)
        }
    }
}

fun main() {
    val sp = Client() // SENDPROMPTLY_API_KEY, SENDPROMPTLY_URL
    embeddedServer(CIO, port = System.getenv("PORT")?.toInt() ?: 8080) {
        credits(sp, System.getenv("STRIPE_WEBHOOK_SECRET"), System.getenv("SENDPROMPTLY_SIGNING_SECRET"), Credits())
    }.start(wait = true)
}
