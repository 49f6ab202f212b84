// ES module entry of `sendpromptly`: the same objects as the CommonJS entry.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const sdk = require('./index.js')

export const {
  SendPromptly,
  Background,
  eventReference,
  verifyRepairRequest,
  stripe,
  shopify,
  SendPromptlyError,
  APIError,
  AuthenticationError,
  NotFoundError,
  ConflictError,
  InvalidRequestError,
  RateLimitError,
  ServerError,
  ConnectionError,
  TimeoutError,
  ValidationError,
  ConfigurationError,
  DecodeError,
  SignatureVerificationError,
  InvalidSignatureError,
  StaleTimestampError,
  MalformedWebhookError,
  RawBodyError,
  WebhookSecretError,
} = sdk
export default SendPromptly
