# frozen_string_literal: true

require_relative "test_helper"

# Pre-fork servers (Puma cluster mode, Unicorn): a client and a background
# queue built before `fork` work in the child.
class ForkTest < Minitest::Test
  P = Sendpromptly::Provider

  def test_a_client_used_before_fork_works_in_the_child
    sp = TestServer.client
    sp.receipt(receipt(P::CUSTOM, unique, "before.fork")) # the parent's pool has a connection now
    id = unique("evt_rb_fork_")
    pid = fork do
      answer = sp.receipt(receipt(P::CUSTOM, id, "in.child"))
      background = sp.background
      background.success(ref(P::CUSTOM, id))
      stats = background.close
      exit!(answer.created && stats.delivered == 1 ? 0 : 1)
    end
    _, status = Process.wait2(pid)
    assert status.success?, "the child's calls failed (#{status.inspect})"
    assert_equal "succeeded", JSON.parse(sp.get_event(P::CUSTOM, id))["event"]["state"]
    # The parent's client still works.
    assert sp.receipt(receipt(P::CUSTOM, unique, "after.fork")).created
  end
end
