# frozen_string_literal: true

require_relative "test_helper"

# Repair callbacks made by the real server, and Stripe/Shopify webhooks.
# Debian ships neither the `standardwebhooks` nor the `stripe` gem and
# rubygems.org is out of reach here, so the signatures these tests forge
# (stale timestamps, Stripe headers) are computed with OpenSSL from the
# published schemes; the official-library comparison runs in the Kotlin
# tests (com.standardwebhooks, stripe-java).
class VerifyTest < Minitest::Test
  SV = Sendpromptly::SignatureVerificationError

  def self.callback
    @callback ||= begin
      sp = TestServer.client
      id = unique
      sp.receipt(receipt(Sendpromptly::Provider::STRIPE, id, "invoice.paid"))
      incident = sp.failure(ref(Sendpromptly::Provider::STRIPE, id), "boom").incident_id
      RepairReceiver.await(JSON.parse(sp.reprocess(incident)).fetch("reprocess_id"))
    end
  end

  def callback
    self.class.callback
  end

  def sign_standard(secret, id, timestamp, body)
    key = Base64.decode64(secret.delete_prefix("whsec_"))
    "v1," + Base64.strict_encode64(OpenSSL::HMAC.digest("SHA256", key, "#{id}.#{timestamp}.#{body}"))
  end

  def test_server_callback_verifies
    cb = Sendpromptly.verify_repair_request(callback.body, callback.headers, [TestServer.secret])
    assert_equal callback.headers["webhook-id"], cb.reprocess_id
    upper = callback.headers.transform_keys(&:upcase)
    Sendpromptly.verify_repair_request(callback.body, upper, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", TestServer.secret])
    # Our forging helper agrees with the server's signature (so the stale case below is meaningful).
    assert_includes callback.headers["webhook-signature"].split(" "),
                    sign_standard(TestServer.secret, callback.headers["webhook-id"],
                                  callback.headers["webhook-timestamp"], callback.body)
  end

  def test_tampered_body_is_refused
    tampered = callback.body.sub("invoice.paid", "invoice.paie")
    err = assert_raises(SV::BadSignature) { Sendpromptly.verify_repair_request(tampered, callback.headers, [TestServer.secret]) }
    assert_equal "no_matching_signature", err.code
    assert_equal "sendpromptly", err.provider
    assert_kind_of SV, err
  end

  def test_wrong_secret_is_refused
    assert_raises(SV::BadSignature) do
      Sendpromptly.verify_repair_request(callback.body, callback.headers, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    end
    assert_raises(SV::SecretConfiguration) { Sendpromptly.verify_repair_request(callback.body, callback.headers, []) }
  end

  def test_stale_timestamp_is_refused
    id = callback.headers["webhook-id"]
    stale = Time.now.to_i - 600
    headers = { "webhook-id" => id, "webhook-timestamp" => stale.to_s,
                "webhook-signature" => sign_standard(TestServer.secret, id, stale, callback.body) }
    err = assert_raises(SV::StaleTimestamp) { Sendpromptly.verify_repair_request(callback.body, headers, [TestServer.secret]) }
    assert_equal "timestamp_too_old", err.code
  end

  STRIPE_SECRET = "whsec_test_ruby_interop"
  STRIPE_EVENT = JSON.generate(
    id: "evt_1RbInterop", object: "event", type: "invoice.paid", created: 1_790_000_000, livemode: false,
    data: { object: { id: "in_1", object: "invoice", customer: "cus_9s8d7f", amount_paid: 500, currency: "usd" } }
  )

  def stripe_header(payload, secret: STRIPE_SECRET, t: Time.now.to_i)
    "t=#{t},v1=#{OpenSSL::HMAC.hexdigest('SHA256', secret, "#{t}.#{payload}")}"
  end

  def test_stripe_events_verify_and_fill_a_receipt
    event = Sendpromptly.stripe_verify(STRIPE_EVENT, stripe_header(STRIPE_EVENT), STRIPE_SECRET)
    assert_equal "evt_1RbInterop", event.id
    r = event.to_receipt
    assert_equal Sendpromptly::Provider::STRIPE, r.provider
    assert_equal "cus_9s8d7f", r.subject
    # Add the effect, then send it.
    sp = TestServer.client
    answer = sp.receipt(r.with(effect: "credits.add"))
    assert_includes [200, 201], answer.status
    assert_equal "credits.add", JSON.parse(answer.event_json)["effect"]
  end

  def test_stripe_refusals_are_typed
    now = Time.now.to_i
    cases = [
      [STRIPE_EVENT.sub("500", "50000"), stripe_header(STRIPE_EVENT), STRIPE_SECRET, SV::BadSignature, "no_matching_signature"],
      [STRIPE_EVENT, stripe_header(STRIPE_EVENT, t: now - 600), STRIPE_SECRET, SV::StaleTimestamp, "timestamp_outside_tolerance"],
      [STRIPE_EVENT, stripe_header(STRIPE_EVENT), "whsec_other", SV::BadSignature, "no_matching_signature"],
      [STRIPE_EVENT, "garbage", STRIPE_SECRET, SV::Malformed, "malformed_header"],
    ]
    cases.each do |payload, header, secret, klass, code|
      err = assert_raises(klass) { Sendpromptly.stripe_verify(payload, header, secret) }
      assert_equal code, err.code
      assert_equal "stripe", err.provider
    end
  end

  def test_shopify_deliveries_verify
    secret = "shpss_ruby"
    body = '{"id":820982911946154508,"total_price":"10.00"}'
    headers = { "X-Shopify-Hmac-Sha256" => Base64.strict_encode64(OpenSSL::HMAC.digest("SHA256", secret, body)),
                "X-Shopify-Topic" => "orders/paid", "X-Shopify-Shop-Domain" => "example.myshopify.com",
                "X-Shopify-Webhook-Id" => "b54557e4", "X-Shopify-Event-Id" => "98880550", "X-Shopify-API-Version" => "2025-07" }
    delivery = Sendpromptly.shopify_verify(body, headers, [secret])
    assert_equal "98880550", delivery.dedupe_id
    assert_equal "orders/paid", delivery.to_receipt.event_type
    assert_raises(SV::BadSignature) { Sendpromptly.shopify_verify(body.sub("10.00", "0.01"), headers, [secret]) }
  end
end
