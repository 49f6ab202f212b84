# frozen_string_literal: true

require_relative "test_helper"

P = Sendpromptly::Provider

# Both signals, incidents, repair callbacks, retries and background mode against a real server.
class WorkflowTest < Minitest::Test
  def sp
    @sp ||= TestServer.client
  end

  def test_receipt_duplicate_and_success
    id = unique
    first = sp.receipt(receipt(P::STRIPE, id, "invoice.paid", subject: "cus_rb", effect: "credits.add",
                                                              metadata_json: '{"credits":500}',
                                                              occurred_at: "2026-11-22T09:00:00Z"))
    assert first.created
    assert_equal 201, first.status
    assert_equal "awaiting_result", first.event_state
    assert_equal 500, JSON.parse(first.event_json)["metadata"]["credits"]
    refute sp.receipt(receipt(P::STRIPE, id, "invoice.paid")).created
    done = sp.success(ref(P::STRIPE, id))
    assert_equal "succeeded", done.event_state
    assert_nil done.incident_id
  end

  def test_failure_reprocess_and_repair_callback
    id = unique
    sp.receipt(receipt(P::STRIPE, id, "invoice.paid", metadata_json: '{"credits":7}'))
    failed = sp.failure(ref(P::STRIPE, id), "tenant acct_42 not found")
    assert_equal "open", failed.incident_state
    asked = JSON.parse(sp.reprocess(failed.incident_id, "fixed the tenant mapping"))
    reprocess_id = asked.fetch("reprocess_id")

    got = RepairReceiver.await(reprocess_id)
    callback = Sendpromptly.verify_repair_request(got.body, got.headers, [TestServer.secret])
    assert_equal reprocess_id, callback.reprocess_id
    assert_equal failed.incident_id, callback.incident_id
    assert_equal id, callback.event.event_id
    assert_equal({ "credits" => 7 }, JSON.parse(callback.event.metadata_json))
    assert_equal reprocess_id, callback.target.reprocess_id

    wait_for("the incident to resolve") do
      JSON.parse(sp.get_incident(failed.incident_id))["incident"]["state"] == "resolved"
    end
  end

  def test_retry_after_a_lost_answer_is_replayed
    proxy = DroppingProxy.new(TestServer.port, "/v1/receipt")
    id = unique
    answer = TestServer.client(proxy.url).receipt(receipt(P::SHOPIFY, id, "orders/paid"))
    assert_equal 1, proxy.dropped
    assert_equal 2, answer.attempts
    assert answer.replayed
    assert_equal 1, JSON.parse(sp.get_event(P::SHOPIFY, id))["event"]["deliveries"]
  ensure
    proxy&.close
  end

  def test_background_drains_on_close_and_reports_drops
    dropped = Queue.new
    ids = Array.new(10) { unique("evt_rb_bg_") }
    background = sp.background(Sendpromptly::BackgroundConfig.new(capacity: 100, concurrency: 2),
                               Sendpromptly.on_drop { |d| dropped << d })
    ids.each { |id| assert background.receipt(receipt(P::CUSTOM, id, "export.run")) }
    refute background.receipt(receipt(P::CUSTOM, "", "export.run"))
    stats = background.close
    assert_equal 10, stats.delivered
    assert_equal 0, stats.pending
    ids.each { |id| assert_includes sp.get_event(P::CUSTOM, id), id }
    assert_equal 1, dropped.size
    assert_equal Sendpromptly::DropReason::INVALID, dropped.pop.reason
    refute background.receipt(receipt(P::CUSTOM, unique, "export.run")), "closed"
  end

  def test_other_threads_run_while_a_call_waits
    # A call waits with the GVL released: a Ruby thread keeps counting.
    ticks = 0
    counter = Thread.new { loop { ticks += 1; sleep 0.001 } }
    down = Sendpromptly::Client.new("sp_live_x", "http://127.0.0.1:#{TestServer.free_port}",
                                    Sendpromptly::RetryConfig.new(max_attempts: 3, initial_backoff_ms: 200))
    assert_raises(Sendpromptly::SendPromptlyError::Transport) { down.receipt(receipt(P::STRIPE, unique, "x.y")) }
    assert_operator ticks, :>, 50
  ensure
    counter&.kill
  end

  def test_errors_are_typed
    err = assert_raises(Sendpromptly::SendPromptlyError::Api) do
      Sendpromptly::Client.new("sp_live_wrong", TestServer.url).receipt(receipt(P::STRIPE, unique, "invoice.paid"))
    end
    assert_equal 401, err.status
    assert_kind_of Sendpromptly::SendPromptlyError, err
    assert_kind_of StandardError, err
    assert_match(/401/, err.message)

    invalid = assert_raises(Sendpromptly::SendPromptlyError::Validation) do
      sp.receipt(receipt(P::STRIPE, "", "invoice.paid"))
    end
    assert_equal "event_id", invalid.param

    down = assert_raises(Sendpromptly::SendPromptlyError::Transport) do
      Sendpromptly::Client.new("sp_live_x", "http://127.0.0.1:#{TestServer.free_port}",
                               Sendpromptly::RetryConfig.new(max_attempts: 2, initial_backoff_ms: 10))
                          .receipt(receipt(P::STRIPE, unique, "invoice.paid"))
    end
    assert_equal Sendpromptly::TransportReason::CONNECT, down.reason
    assert_equal 2, down.attempts

    assert_raises(Sendpromptly::SendPromptlyError::Configuration) { Sendpromptly::Client.new("nope", TestServer.url) }
  end

  def test_retry_configuration_matches_the_rust_sdk
    defaults = Sendpromptly.default_retry_config
    assert_equal [3, 100, 1000, 0.5, 3000, 2000],
                 [defaults.max_attempts, defaults.initial_backoff_ms, defaults.max_backoff_ms, defaults.jitter,
                  defaults.total_budget_ms, defaults.attempt_timeout_ms]
    assert_equal defaults, sp.retry_config
    patient = sp.with_retry(Sendpromptly::RetryConfig.new(total_budget_ms: 1500))
    assert_equal 1500, patient.retry_config.total_budget_ms
    assert_equal 3, patient.retry_config.max_attempts
    assert_equal 20, Sendpromptly.background_retry_config.max_attempts
  end
end
