package com.sendpromptly.bench;

import com.sendpromptly.SendpromptlyKt;
import com.standardwebhooks.Webhook;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The SDK's verifiers (Rust through uniffi and JNA) against the official Java
 * libraries on the same inputs. Each side does what a handler does per
 * request: verify the signature and parse the body into its event object.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class VerifyBench {
    static final String CALLBACK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    static final String STRIPE_SECRET = "whsec_test_jmh";

    @Param({"1024", "16384"})
    public int size;

    byte[] callbackBytes;
    String callbackText;
    Map<String, String> headers;
    Map<String, List<String>> headerLists;
    List<String> secrets;
    Webhook official;
    String stripePayload;
    byte[] stripeBytes;
    String stripeHeader;

    static String pad(String template, int size) {
        return template.replace("PAD", "x".repeat(Math.max(0, size - template.length() + 3)));
    }

    @Setup
    public void setup() throws Exception {
        callbackText = pad("{\"type\":\"reprocess.requested\",\"reprocess_id\":\"rep_01BENCH\",\"incident_id\":\"inc_01BENCH\","
                + "\"attempt\":1,\"requested_at\":\"2026-11-22T10:00:00Z\",\"requested_by\":\"console:alice@example.com\","
                + "\"event\":{\"provider\":\"stripe\",\"event_id\":\"evt_1Q2w3E\",\"event_type\":\"invoice.paid\","
                + "\"subject\":\"cus_9s8d7f\",\"effect\":\"credits.add\",\"metadata\":{\"credits\":500,\"pad\":\"PAD\"}}}", size);
        callbackBytes = callbackText.getBytes(StandardCharsets.UTF_8);
        long now = System.currentTimeMillis() / 1000;
        official = new Webhook(CALLBACK_SECRET);
        headers = Map.of("webhook-id", "rep_01BENCH", "webhook-timestamp", Long.toString(now),
                "webhook-signature", official.sign("rep_01BENCH", now, callbackText));
        headerLists = Map.of("webhook-id", List.of(headers.get("webhook-id")),
                "webhook-timestamp", List.of(headers.get("webhook-timestamp")),
                "webhook-signature", List.of(headers.get("webhook-signature")));
        secrets = List.of(CALLBACK_SECRET);

        stripePayload = pad("{\"id\":\"evt_1JmhBench\",\"object\":\"event\",\"type\":\"invoice.paid\",\"created\":1790000000,"
                + "\"livemode\":false,\"api_version\":\"2025-07-30.basil\",\"data\":{\"object\":{\"id\":\"in_1\","
                + "\"object\":\"invoice\",\"customer\":\"cus_9s8d7f\",\"amount_paid\":500,\"description\":\"PAD\"}}}", size);
        stripeBytes = stripePayload.getBytes(StandardCharsets.UTF_8);
        stripeHeader = com.stripe.net.Webhook.Signature.generateSignatureHeader(stripePayload, STRIPE_SECRET, now);
        // Both sides accept the inputs.
        if (!SendpromptlyKt.verifyRepairRequest(callbackBytes, headers, secrets).reprocessId().equals("rep_01BENCH")) {
            throw new IllegalStateException("ours refused the callback");
        }
        official.verify(callbackText, headerLists);
        SendpromptlyKt.stripeVerify(stripeBytes, stripeHeader, STRIPE_SECRET, null).close();
        com.stripe.net.Webhook.constructEvent(stripePayload, stripeHeader, STRIPE_SECRET);
    }

    @Benchmark
    public String standardWebhooksOurs() throws Exception {
        try (var callback = SendpromptlyKt.verifyRepairRequest(callbackBytes, headers, secrets)) {
            return callback.reprocessId();
        }
    }

    /** The official library verifies; the handler then parses the body (with the Gson stripe-java brings). */
    @Benchmark
    public Object standardWebhooksOfficial() throws Exception {
        official.verify(callbackText, headerLists);
        return com.google.gson.JsonParser.parseString(callbackText);
    }

    @Benchmark
    public String stripeOurs() throws Exception {
        try (var event = SendpromptlyKt.stripeVerify(stripeBytes, stripeHeader, STRIPE_SECRET, null)) {
            return event.id();
        }
    }

    @Benchmark
    public String stripeOfficial() throws Exception {
        return com.stripe.net.Webhook.constructEvent(stripePayload, stripeHeader, STRIPE_SECRET).getId();
    }
}
