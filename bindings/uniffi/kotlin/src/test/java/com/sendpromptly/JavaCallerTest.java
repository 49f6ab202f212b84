package com.sendpromptly;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The SDK from plain Java: blocking calls, records, the drop handler, typed exceptions. */
class JavaCallerTest {
    private final TestServer server = TestServer.INSTANCE;

    private Receipt receipt(String eventId) {
        // Java passes every field of a record (Kotlin's defaults are Kotlin-only).
        return new Receipt(Provider.CUSTOM, eventId, "export.run", "acct_java", "export.create",
                null, "{\"rows\":10}", null, null);
    }

    @Test
    void signalsFromJava() {
        try (Client sp = new Client(server.getApiKey(), server.getUrl(), null)) {
            String id = TestServerKt.unique("job_java_");
            SignalResponse first = sp.receipt(receipt(id));
            assertTrue(first.getCreated());
            assertEquals(201, first.getStatus());
            SignalResponse done = sp.success(new EventRef(Provider.CUSTOM, id, null), null, null);
            assertEquals("succeeded", done.getEventState());
            String other = TestServerKt.unique("job_java_");
            sp.receipt(receipt(other));
            SignalResponse failed = sp.failure(new EventRef(Provider.CUSTOM, other, null), "disk full", null, null);
            assertEquals("open", failed.getIncidentState());
        } catch (SendPromptlyException e) {
            throw new AssertionError(e.getMessage(), e);
        }
    }

    @Test
    void typedExceptionsFromJava() throws Exception {
        try (Client sp = new Client(server.getApiKey(), server.getUrl(), null)) {
            SendPromptlyException.Validation err = assertThrows(SendPromptlyException.Validation.class,
                    () -> sp.receipt(receipt("")));
            assertEquals("event_id", err.getParam());
        }
        SendPromptlyException.Api api = assertThrows(SendPromptlyException.Api.class,
                () -> new Client("sp_live_wrong", server.getUrl(), null).receipt(receipt("job_java_401")));
        assertEquals(401, api.getStatus());
    }

    @Test
    void verifiersFromJava() {
        String secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        byte[] body = "{}".getBytes(StandardCharsets.UTF_8);
        Map<String, String> headers = Map.of("webhook-id", "rep_1", "webhook-timestamp", "1", "webhook-signature", "v1,AAAA");
        SignatureVerificationException.StaleTimestamp err = assertThrows(
                SignatureVerificationException.StaleTimestamp.class,
                () -> SendpromptlyKt.verifyRepairRequest(body, headers, List.of(secret)));
        assertEquals("sendpromptly", err.getProvider());
    }

    @Test
    void backgroundFromJava() throws Exception {
        List<DroppedSignal> dropped = new ArrayList<>();
        DropHandler handler = signal -> {
            synchronized (dropped) {
                dropped.add(signal);
            }
        };
        String id = TestServerKt.unique("job_java_bg_");
        try (Client sp = new Client(server.getApiKey(), server.getUrl(), null)) {
            try (Background background = sp.background(new BackgroundConfig(null, 1, null), handler)) {
                assertTrue(background.receipt(receipt(id)));
                assertTrue(!background.receipt(receipt("")));
            } // close() drains
            assertTrue(sp.getEvent(Provider.CUSTOM, id).contains(id));
        }
        synchronized (dropped) {
            assertEquals(1, dropped.size());
            assertEquals(DropReason.INVALID, dropped.get(0).getReason());
        }
    }
}
