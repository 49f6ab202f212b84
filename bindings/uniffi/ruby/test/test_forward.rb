# frozen_string_literal: true

require_relative "test_helper"

# Forward compatibility: this gem reads a newer server's answers. A real
# answer of the current server, as a newer server would send it (a timeline
# entry of a kind this version does not know, by an actor of a new sort; an
# event state, incident kind and state, resolution, reprocess status and
# provider it does not know), is served on a loopback port; the client reads
# it and hands the new values to the caller as sent.
class ForwardTest < Minitest::Test
  def raw_get(path)
    uri = URI("#{TestServer.url}#{path}")
    request = Net::HTTP::Get.new(uri)
    request["Authorization"] = "Bearer #{TestServer.api_key}"
    answer = Net::HTTP.start(uri.host, uri.port) { |http| http.request(request) }
    assert_equal "200", answer.code
    JSON.parse(answer.body)
  end

  def as_newer_server(answer)
    answer["event"]["state"] = "archived"
    answer["event"]["provider"] = "paddle"
    incident = answer["incident"]
    incident["kind"] = "chargeback_lost"
    incident["state"] = "escalated"
    incident["resolution"] = "auto_closed"
    incident["event"]["provider"] = "paddle"
    incident["reprocess"]["status"] = "queued_for_review"
    answer["timeline"] << { "at" => "2026-11-22T10:00:05.000Z", "kind" => "payout.reconciled",
                            "actor" => "batch:bat_1", "detail" => { "payout" => "po_1" } }
    answer
  end

  def test_an_older_client_reads_a_newer_servers_event_and_incident
    sp = TestServer.client
    id = unique
    sp.receipt(receipt(Sendpromptly::Provider::STRIPE, id, "invoice.paid"))
    failed = sp.failure(ref(Sendpromptly::Provider::STRIPE, id), "boom")
    asked = JSON.parse(sp.reprocess(failed.incident_id, "forward compatibility"))
    RepairReceiver.await(asked.fetch("reprocess_id"))
    wait_for("the incident to resolve") do
      JSON.parse(sp.get_incident(failed.incident_id))["incident"]["state"] == "resolved"
    end
    bodies = {
      "/v1/events/stripe/#{id}" => as_newer_server(raw_get("/v1/events/stripe/#{id}")),
      "/v1/incidents/#{failed.incident_id}" => as_newer_server(raw_get("/v1/incidents/#{failed.incident_id}"))
    }
    newer = WEBrick::HTTPServer.new(BindAddress: "127.0.0.1", Port: 0, Logger: WEBrick::Log.new(File::NULL),
                                    AccessLog: [])
    bodies.each do |path, body|
      newer.mount_proc(path) do |_req, res|
        res.status = 200
        res["Content-Type"] = "application/json"
        res.body = JSON.generate(body)
      end
    end
    Thread.new { newer.start }
    older = TestServer.client("http://127.0.0.1:#{newer.config[:Port]}")

    details = [older.get_event(Sendpromptly::Provider::STRIPE, id), older.get_incident(failed.incident_id)]
    details.map { |text| JSON.parse(text) }.each do |detail|
      newest = detail["timeline"].last
      assert_equal "payout.reconciled", newest["kind"]
      assert_equal "batch:bat_1", newest["actor"]
      assert_equal({ "payout" => "po_1" }, newest["detail"])
      assert_equal "receipt.recorded", detail["timeline"].first["kind"]
      assert_equal "archived", detail["event"]["state"]
      assert_equal "paddle", detail["event"]["provider"]
      assert_equal "chargeback_lost", detail["incident"]["kind"]
      assert_equal "escalated", detail["incident"]["state"]
      assert_equal "auto_closed", detail["incident"]["resolution"]
      assert_equal "paddle", detail["incident"]["event"]["provider"]
      assert_equal "queued_for_review", detail["incident"]["reprocess"]["status"]
    end
  ensure
    newer&.shutdown
  end
end
