// A web page's use of @segment/analytics-next wrapped by
// @segment/analytics-consent-tools, bundled for the browser test with
// esbuild: a stand-in consent management platform with OneTrust-style
// category ids, settings given inline (no CDN), events sent to the phimask
// Worker as the Segment.io destination's API host. consent-tools stamps
// every event's context.consent.categoryPreferences with the CMP's
// categories as they are when the event is sent, and sends "Segment
// Consent Preference Updated" when they change.
import { AnalyticsBrowser } from "@segment/analytics-next";
import { createWrapper } from "@segment/analytics-consent-tools";

// The visitor has agreed to what is strictly necessary and to analytics.
const cmp = { categories: { C0001: true, C0002: true, C0004: false }, listeners: [] };

const withCmp = createWrapper({
  shouldLoadSegment: (ctx) => ctx.load({ consentModel: "opt-in" }),
  getCategories: () => ({ ...cmp.categories }),
  registerOnConsentChanged: (setCategories) => cmp.listeners.push(setCategories),
});

let analytics;

window.start = async ({ writeKey, apiHost }) => {
  analytics = new AnalyticsBrowser();
  const segment = { apiKey: writeKey, apiHost, protocol: "http" };
  withCmp(analytics).load({ writeKey, cdnSettings: { integrations: { "Segment.io": segment } } }, { disableClientPersistence: true });
  await analytics;
  return "loaded";
};

window.send = async (userId, step) => {
  await analytics.identify(userId, { plan: "Jane Doe", email: "jane.doe@example.com" });
  await analytics.track("Appointment Booked", { plan: "gold", appointment_type: "HIV positive", step });
  await analytics.page("Services", "Appointments", { plan: "gold", step });
  return "sent";
};

/** The visitor grants a category in the CMP's banner. */
window.grant = async (id) => {
  cmp.categories = { ...cmp.categories, [id]: true };
  for (const setCategories of cmp.listeners) setCategories({ ...cmp.categories });
  return "granted";
};
