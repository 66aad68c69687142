// The API every entry (node.js, workerd.js, browser.js) exports: the engine
// is ready when the import resolves, so there is no init to call.
export { callTypes, dataMap, limits, preparePolicy, readRequest, requestWriteKey, Sanitizer, validatePolicy } from "./phimask.js";
export type {
  Action,
  Allowlist,
  Allowlists,
  CallType,
  Destination,
  Detector,
  ErrorCode,
  EventsMap,
  Explanation,
  IdentifierAction,
  Limits,
  NameRule,
  PhimaskError,
  Policy,
  PolicyProblem,
  Processed,
  Report,
  Scan,
  SegmentEvent,
  Target,
  TrackingRequest,
  ValidationResult,
} from "./phimask.js";
