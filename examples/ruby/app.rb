# frozen_string_literal: true

# A Rack app (the shape of a Rails controller: one action per endpoint) whose
# Stripe webhook handler adds credits, instrumented with SendPromptly's two
# signals, and the repair endpoint SendPromptly calls when someone asks to
# reprocess a failed or missing result.
#
#   export STRIPE_WEBHOOK_SECRET=whsec_…          # from the Stripe dashboard / CLI
#   export SENDPROMPTLY_API_KEY=sp_live_…          # printed by `sendpromptly serve`
#   export SENDPROMPTLY_URL=http://127.0.0.1:7700
#   export SENDPROMPTLY_SIGNING_SECRET=whsec_…     # printed by `sendpromptly serve`
#   ruby -I../../bindings/uniffi/ruby/lib -rrack -rrack/handler/webrick -e \
#     'require "./app"; Rack::Handler::WEBrick.run(CreditsApp.new, Port: 9292)'
#
# and set the project's repair URL to http://127.0.0.1:9292/sendpromptly/repair.
require "json"
require "logger"
require "set"
require "sendpromptly"

# The business effect: credits per Stripe customer, applied once per event id.
class Credits
  attr_reader :balances, :known_customers

  def initialize
    @balances = Hash.new(0)
    @known_customers = Set.new
    @applied = Set.new
    @mutex = Mutex.new
  end

  # Applies the effect; returns why it failed, or nil.
  def add(event_id, customer, amount)
    return "no account for customer #{customer.inspect}" unless @known_customers.include?(customer)

    @mutex.synchronize { @balances[customer] += amount if @applied.add?(event_id) }
    nil
  end
end

class CreditsApp
  LOG = Logger.new($stderr)

  def initialize(sp: Sendpromptly::Client.new, # SENDPROMPTLY_API_KEY, SENDPROMPTLY_URL
                 stripe_secret: ENV.fetch("STRIPE_WEBHOOK_SECRET"),
                 signing_secret: ENV.fetch("SENDPROMPTLY_SIGNING_SECRET"),
                 credits: Credits.new)
    @sp = sp
    @stripe_secret = stripe_secret
    @signing_secret = signing_secret
    @credits = credits
  end

  def call(env)
    request = Rack::Request.new(env)
    return [404, {}, []] unless request.post?

    case request.path_info
    when "/webhooks/stripe" then stripe_webhook(request)
    when "/sendpromptly/repair" then repair(request)
    else [404, {}, []]
    end
  end

  # POST /webhooks/stripe — in Rails: `request.raw_post`, `request.headers["Stripe-Signature"]`.
  def stripe_webhook(request)
    event = Sendpromptly.stripe_verify(request.body.read, request.get_header("HTTP_STRIPE_SIGNATURE").to_s, @stripe_secret)
    return json(200, ignored: event.event_type) unless event.event_type == "invoice.paid"

    amount = JSON.parse(event.object_json).fetch("amount_paid", 0)
    receipt = event.to_receipt.with(effect: "credits.add", metadata_json: JSON.generate(credits: amount))

    # 1. Receipt. Never fail the webhook because SendPromptly is down (3 s budget).
    begin
      @sp.receipt(receipt)
    rescue Sendpromptly::SendPromptlyError => e
      LOG.warn("SendPromptly receipt not recorded: #{e.message}")
    end

    # 2. The business effect, then the result.
    failure = @credits.add(event.id, receipt.subject, amount)
    begin
      failure ? @sp.failure(event.target, failure) : @sp.success(event.target)
    rescue Sendpromptly::SendPromptlyError => e
      LOG.warn("SendPromptly result not recorded: #{e.message}")
    end
    json(200, received: true)
  rescue Sendpromptly::SignatureVerificationError => e
    json(400, error: e.message)
  end

  # POST /sendpromptly/repair — in Rails: `request.raw_post` and
  # `Sendpromptly.rack_headers(request.env)`.
  def repair(request)
    callback = Sendpromptly.verify_repair_request(request.body.read, Sendpromptly.rack_headers(request.env), [@signing_secret])
    # Process the event again (idempotently) from what its receipt said.
    event = callback.event
    amount = event.metadata_json ? JSON.parse(event.metadata_json).fetch("credits", 0) : 0
    failure = @credits.add(event.event_id, event.subject, amount)
    begin
      # target: the event and this reprocess id, so the result resolves the incident.
      failure ? @sp.failure(callback.target, failure) : @sp.success(callback.target)
    rescue Sendpromptly::SendPromptlyError
      return json(503, error: "result not recorded") # SendPromptly delivers the callback again
    end
    json(200, repaired: failure.nil?)
  rescue Sendpromptly::SignatureVerificationError => e
    json(400, error: e.message)
  end

  private

  def json(status, body)
    [status, { "content-type" => "application/json" }, [JSON.generate(body)]]
  end
end
