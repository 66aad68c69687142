// A web page's use of RudderStack's browser SDK (@rudderstack/analytics-js,
// its build with every plugin bundled, so none is loaded from a CDN),
// bundled for the browser test with esbuild: the source configuration
// given inline (getSourceConfig, no control plane), no device-mode
// destination, events sent to the phimask Worker as the data plane. Its
// "custom" consent manager stamps every event's
// context.consentManagement with the allowed and denied ids it was given,
// at load and after each consent() call.
import { RudderAnalytics } from "@rudderstack/analytics-js/bundled";

let analytics;

window.start = ({ writeKey, dataPlaneUrl, allowed, denied }) =>
  new Promise((resolve, reject) => {
    analytics = new RudderAnalytics();
    const timer = setTimeout(() => reject(new Error("RudderStack did not become ready")), 20_000);
    analytics.load(writeKey, dataPlaneUrl, {
      getSourceConfig: () => ({
        source: { id: "phimask-test-source", name: "phimask test", workspaceId: "phimask-test", enabled: true, config: {}, destinations: [] },
      }),
      consentManagement: { enabled: true, provider: "custom", allowedConsentIds: allowed, deniedConsentIds: denied },
      // Nothing from a CDN: no polyfill, no device-mode destinations.
      polyfillIfRequired: false,
      loadIntegration: false,
      logLevel: "ERROR",
      storage: { type: "memoryStorage" },
      onLoaded: () => {
        clearTimeout(timer);
        resolve("loaded");
      },
    });
  });

window.send = async (userId, step) => {
  const call = (fn) => new Promise((resolve) => fn(resolve));
  await call((done) => analytics.identify(userId, { plan: "Jane Doe", email: "jane.doe@example.com" }, done));
  await call((done) => analytics.track("Appointment Booked", { plan: "gold", appointment_type: "HIV positive", step }, done));
  await call((done) => analytics.page("Services", "Appointments", { plan: "gold", step }, done));
  return "sent";
};

/** The visitor's choices change (RudderStack's consent API). */
window.consent = async (allowed, denied) => {
  analytics.consent({ consentManagement: { allowedConsentIds: allowed, deniedConsentIds: denied } });
  return "changed";
};
