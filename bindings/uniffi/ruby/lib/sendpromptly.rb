# frozen_string_literal: true

# The SendPromptly SDK for Ruby: the Rust SDK through uniffi (see
# docs/ruby.md). Everything is in the generated lib/sendpromptly/native.rb;
# this file only adds Ruby conveniences that convert, never decide.
require "ffi"

module Sendpromptly
  # The generated module that attaches the library's functions. The calls
  # that wait on the network (or drain a queue) are attached as ruby-ffi
  # `blocking: true` functions: Ruby releases the GVL while they run, so
  # other threads (Puma's) keep running and background-mode drop callbacks
  # can enter Ruby.
  module UniFFILib
    BLOCKING = /_fn_(method_client_(receipt|success|failure|result|get_event|get_incident|reprocess|resolve|project|update_project|health)|method_background_(flush|shutdown)|free_background)\z/

    def self.attach_function(name, *rest)
      @blocking = true if BLOCKING.match?(name.to_s)
      super
    end
  end
end

require_relative "sendpromptly/native"

module Sendpromptly
  # Every error of a call to the server (`rescue Sendpromptly::SendPromptlyError`)
  # and every verification failure (`rescue Sendpromptly::SignatureVerificationError`):
  # the generated error classes gain their family as an ancestor, and their
  # message is the Rust SDK's description.
  module Described
    def message
      description
    end

    alias to_s message
  end

  [SendPromptlyError, SignatureVerificationError].each do |family|
    family.constants.map { |name| family.const_get(name) }.grep(Class).each do |error|
      error.include(family)
      error.prepend(Described)
    end
  end

  # Request headers from a Rack env (`HTTP_WEBHOOK_ID` → `webhook-id`,
  # plus `CONTENT_TYPE`), for `verify_repair_request` and `shopify_verify`.
  def self.rack_headers(env)
    env.each_with_object({}) do |(key, value), headers|
      next unless value.is_a?(String)

      if key.start_with?("HTTP_")
        headers[key.delete_prefix("HTTP_").downcase.tr("_", "-")] = value
      elsif key == "CONTENT_TYPE"
        headers["content-type"] = value
      end
    end
  end

  # `record.with(effect: "credits.add")`: a copy with some fields changed,
  # like Kotlin's `copy` (e.g. on the receipt `StripeEvent#to_receipt` fills).
  module With
    def with(**changes)
      fields = instance_variables.to_h { |name| [name.to_s.delete_prefix("@").to_sym, instance_variable_get(name)] }
      self.class.new(**fields, **changes)
    end
  end

  [Receipt, ResultSignal, EventRef, RetryConfig, BackgroundConfig].each { |record| record.include(With) }

  class Background
    # Closes the queue after delivering what is queued (up to `timeout_ms`,
    # default 10 s): `shutdown`, under the name Ruby code looks for.
    def close(timeout_ms = nil)
      shutdown(timeout_ms)
    end
  end

  # A block-style drop handler: `sp.background(cfg, Sendpromptly.on_drop { |dropped| … })`.
  def self.on_drop(&block)
    handler = Object.new
    handler.define_singleton_method(:on_drop) { |dropped| block.call(dropped) }
    handler
  end
end
