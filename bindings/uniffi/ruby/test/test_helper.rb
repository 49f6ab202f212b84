# frozen_string_literal: true

# Fixtures: a real `sendpromptly serve` on a loopback port (SENDPROMPTLY_BIN,
# temp SQLite file), a WEBrick repair endpoint, and a proxy that loses answers.
require "minitest/autorun"
require "json"
require "net/http"
require "openssl"
require "base64"
require "socket"
require "tmpdir"
require "webrick"
require "sendpromptly"

module TestServer
  class << self
    attr_reader :url, :api_key, :secret, :port

    def start
      binary = ENV.fetch("SENDPROMPTLY_BIN") { abort "SENDPROMPTLY_BIN is not set (scripts/test-uniffi.sh sets it)" }
      work = Dir.mktmpdir("sendpromptly-rb-")
      @port = free_port
      log = File.join(work, "serve.out")
      env = { "SENDPROMPTLY_LOG" => ENV.fetch("SENDPROMPTLY_LOG", "warn"),
              "SENDPROMPTLY_API_KEY" => nil, "SENDPROMPTLY_URL" => nil, "SENDPROMPTLY_CONFIG" => nil }
      pid = Process.spawn(env, binary, "serve", "--listen", "127.0.0.1:#{@port}",
                          "--database-url", "sqlite://#{File.join(work, 'sendpromptly.db')}",
                          "--allow-private-urls", "--sweep-interval-ms", "200",
                          "--callback-retry-delays", "1,1,1", out: log, err: %i[child out])
      Minitest.after_run { Process.kill("TERM", pid) rescue nil }
      deadline = Time.now + 60
      loop do
        text = File.exist?(log) ? File.read(log) : ""
        key = text[/^\s*API key:\s*(sp_\S+)/, 1]
        whsec = text[/^\s*signing secret:\s*(whsec_\S+)/, 1]
        if key && whsec && text.include?("listening on")
          @api_key = key
          @secret = whsec
          break
        end
        abort "sendpromptly serve did not start:\n#{text}" if Time.now > deadline || Process.waitpid(pid, Process::WNOHANG)
        sleep 0.1
      end
      @url = "http://127.0.0.1:#{@port}"
    end

    def client(base = url, retry_config = nil)
      Sendpromptly::Client.new(api_key, base, retry_config)
    end

    def free_port
      server = TCPServer.new("127.0.0.1", 0)
      server.addr[1]
    ensure
      server&.close
    end
  end
end

TestServer.start

def unique(prefix = "evt_rb_")
  prefix + Sendpromptly.new_idempotency_key.delete_prefix("sp_idem_")
end

def wait_for(what, timeout = 20)
  deadline = Time.now + timeout
  loop do
    value = yield
    return value if value
    raise Minitest::Assertion, "timed out waiting for #{what}" if Time.now > deadline

    sleep 0.1
  end
end

def receipt(provider, event_id, event_type, **fields)
  Sendpromptly::Receipt.new(provider: provider, event_id: event_id, event_type: event_type, **fields)
end

def ref(provider, event_id)
  Sendpromptly::EventRef.new(provider: provider, event_id: event_id)
end

# The repair endpoint: records each request, verifies it and reports success.
module RepairReceiver
  Received = Struct.new(:body, :headers)

  class << self
    attr_reader :url

    def received
      @mutex.synchronize { @received.dup }
    end

    def start
      @received = []
      @mutex = Mutex.new
      reporter = TestServer.client
      server = WEBrick::HTTPServer.new(BindAddress: "127.0.0.1", Port: 0, Logger: WEBrick::Log.new(File::NULL),
                                       AccessLog: [])
      server.mount_proc("/sendpromptly/repair") do |req, res|
        headers = req.header.transform_values(&:first)
        body = req.body.b
        @mutex.synchronize { @received << Received.new(body, headers) }
        begin
          callback = Sendpromptly.verify_repair_request(body, headers, [TestServer.secret])
          reporter.success(callback.target, '{"repaired_by":"minitest"}')
          res.status = 200
        rescue Sendpromptly::SignatureVerificationError
          res.status = 400
        end
      end
      Thread.new { server.start }
      @url = "http://127.0.0.1:#{server.config[:Port]}/sendpromptly/repair"
      reporter.update_project(JSON.generate(repair_url: @url))
    end

    def await(reprocess_id)
      wait_for("the repair callback #{reprocess_id}") { received.find { |r| r.headers["webhook-id"] == reprocess_id } }
    end
  end
end

RepairReceiver.start

# An HTTP/1.1 proxy that forwards every request but closes the client's
# connection instead of answering, for the first `drop` requests under `prefix`.
class DroppingProxy
  attr_reader :url, :dropped

  def initialize(upstream_port, prefix, drop = 1)
    @listener = TCPServer.new("127.0.0.1", 0)
    @url = "http://127.0.0.1:#{@listener.addr[1]}"
    @upstream_port = upstream_port
    @prefix = prefix
    @to_drop = drop
    @dropped = 0
    @mutex = Mutex.new
    @thread = Thread.new do
      loop do
        client = @listener.accept
        Thread.new(client) { |c| serve(c) }
      rescue IOError
        break
      end
    end
  end

  def close
    @listener.close
  end

  private

  def serve(client)
    while (request = read_message(client))
      path = request.lines.first.to_s.split(" ")[1].to_s
      upstream = TCPSocket.new("127.0.0.1", @upstream_port)
      upstream.write(request)
      answer = read_message(upstream)
      upstream.close
      drop = @mutex.synchronize do
        if path.start_with?(@prefix) && @to_drop.positive?
          @to_drop -= 1
          @dropped += 1
          true
        end
      end
      break if drop || answer.nil?

      client.write(answer)
    end
  ensure
    client.close
  end

  def read_message(io)
    head = String.new(encoding: Encoding::BINARY)
    until head.end_with?("\r\n\r\n")
      byte = io.read(1)
      return nil if byte.nil?

      head << byte
    end
    length = head[/^content-length:\s*(\d+)/i, 1].to_i
    head + (length.positive? ? io.read(length) : "")
  end
end
