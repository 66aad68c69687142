// A web page's use of @segment/analytics-next, bundled for the browser
// test with esbuild: settings given inline (no CDN), events sent to the
// phimask Worker as the Segment.io destination's API host.
import { AnalyticsBrowser } from "@segment/analytics-next";

window.sendAll = async ({ writeKey, apiHost, userId, batching }) => {
  const segment = { apiKey: writeKey, apiHost, protocol: "http" };
  if (batching) segment.deliveryStrategy = { strategy: "batching", config: { size: 6, timeout: 300 } };
  const [analytics] = await AnalyticsBrowser.load(
    { writeKey, cdnSettings: { integrations: { "Segment.io": segment } } },
    { disableClientPersistence: true },
  );
  await analytics.identify(userId, { email: "jane.doe@example.com", plan: "gold", name: "Jane Doe" });
  await analytics.track("Booked Cardiology Appointment", { plan: "gold", reason: "chest pain", email: "jane.doe@example.com" });
  await analytics.page("Services", "HIV Testing", { plan: "gold" });
  await analytics.screen("Services", "HIV Testing", { plan: "gold" });
  await analytics.group("clinic-77", { name: "Northside Clinic", employees: 12 });
  await analytics.alias(userId, `anon-prev-${userId}`);
  return "sent";
};
