# frozen_string_literal: true

# The app end to end against a real server (scripts/test-uniffi.sh starts it
# and sets SENDPROMPTLY_URL, SENDPROMPTLY_API_KEY, SENDPROMPTLY_SIGNING_SECRET):
# a paid invoice for an unknown customer opens an incident; once the account
# exists, Reprocess calls the repair endpoint, which applies the credits and
# resolves it.
require "minitest/autorun"
require "net/http"
require "openssl"
require "set"
require "socket"
require "rack"
require "rack/handler/webrick"
require_relative "app"

class AppTest < Minitest::Test
  STRIPE_SECRET = "whsec_example_rack"

  def stripe_post(base, payload)
    t = Time.now.to_i
    header = "t=#{t},v1=#{OpenSSL::HMAC.hexdigest('SHA256', STRIPE_SECRET, "#{t}.#{payload}")}"
    Net::HTTP.post(URI("#{base}/webhooks/stripe"), payload, "Stripe-Signature" => header, "Content-Type" => "application/json")
  end

  def invoice(id, customer)
    JSON.generate(id: id, object: "event", type: "invoice.paid", created: 1_790_000_000, livemode: false,
                  data: { object: { id: "in_#{id}", object: "invoice", customer: customer, amount_paid: 500, currency: "usd" } })
  end

  def test_paid_failed_repaired
    sp = Sendpromptly::Client.new
    credits = Credits.new
    credits.known_customers << "cus_known"
    app = CreditsApp.new(sp: sp, stripe_secret: STRIPE_SECRET, credits: credits)
    port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
    server = nil
    Thread.new do
      Rack::Handler::WEBrick.run(app, Host: "127.0.0.1", Port: port, Logger: WEBrick::Log.new(File::NULL), AccessLog: []) { |s| server = s }
    end
    sleep 0.05 until server
    base = "http://127.0.0.1:#{port}"
    sp.update_project(JSON.generate(repair_url: "#{base}/sendpromptly/repair"))
    suffix = Process.clock_gettime(Process::CLOCK_REALTIME, :nanosecond)

    assert_equal "200", stripe_post(base, invoice("evt_rb_ok_#{suffix}", "cus_known")).code
    assert_equal 500, credits.balances["cus_known"]
    assert_equal "succeeded", JSON.parse(sp.get_event(Sendpromptly::Provider::STRIPE, "evt_rb_ok_#{suffix}"))["event"]["state"]

    forged = Net::HTTP.post(URI("#{base}/webhooks/stripe"), invoice("evt_x", "cus_known"), "Stripe-Signature" => "t=1,v1=00")
    assert_equal "400", forged.code

    late = "evt_rb_late_#{suffix}"
    assert_equal "200", stripe_post(base, invoice(late, "cus_late_#{suffix}")).code
    event = JSON.parse(sp.get_event(Sendpromptly::Provider::STRIPE, late))
    assert_equal "failed", event["event"]["state"]
    incident = event["event"]["incident_id"]

    credits.known_customers << "cus_late_#{suffix}"
    sp.reprocess(incident, "account created")
    deadline = Time.now + 20
    until JSON.parse(sp.get_incident(incident))["incident"]["resolution"] == "success_result"
      flunk "the incident did not resolve" if Time.now > deadline
      sleep 0.1
    end
    assert_equal 500, credits.balances["cus_late_#{suffix}"]
  ensure
    server&.shutdown
  end
end
