# The Ruby SDK of SendPromptly: the uniffi-generated bindings
# (lib/sendpromptly/native.rb, committed) and the native library
# (lib/sendpromptly/libsendpromptly_uniffi.so, built by cargo and copied in;
# see docs/ruby.md).
Gem::Specification.new do |spec|
  spec.name = "sendpromptly"
  spec.version = "0.1.0"
  spec.summary = "SendPromptly: detect when your app never applied a paid event's effect"
  spec.authors = ["SendPromptly"]
  spec.license = "Apache-2.0"
  spec.files = Dir["lib/**/*.rb"] + Dir["lib/sendpromptly/libsendpromptly_uniffi.*"]
  spec.require_paths = ["lib"]
  spec.required_ruby_version = ">= 3.1"
  spec.add_dependency "ffi", ">= 1.15"
end
