// Triggers and actions in words, as the list and the detail view show them.
const FLOW_RUN = "prefect.flow-run.";
const WORK_QUEUE = "prefect.work-queue.";
const DEPLOYMENT = "prefect.deployment.";

export function duration(seconds) {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const all = (names, prefix) => names.length > 0 && names.every((n) => n.startsWith(prefix));
const strip = (names, prefix) => names.map((n) => n.slice(prefix.length)).join(" or ");

export function describeTrigger(trigger) {
  const { posture, after, expect, within, threshold } = trigger;
  if (posture === "Proactive" && all(after, FLOW_RUN)) {
    return `When a flow run stays ${strip(after, FLOW_RUN)} for ${duration(within)}`;
  }
  if (posture === "Reactive" && all(expect, FLOW_RUN) && !after.length) {
    return `When a flow run enters ${strip(expect, FLOW_RUN)}`;
  }
  if (posture === "Proactive" && all(after, WORK_QUEUE)) {
    return `When a work queue stays ${strip(after, WORK_QUEUE)} for ${duration(within)}`;
  }
  if (all(expect, WORK_QUEUE) && !after.length) {
    return `When a work queue becomes ${strip(expect, WORK_QUEUE)}`;
  }
  if (all(expect, DEPLOYMENT) && !after.length) {
    return `When a deployment becomes ${strip(expect, DEPLOYMENT)}`;
  }
  const events = expect.length ? expect.join(", ") : "any event";
  const since = after.length ? ` after ${after.join(", ")}` : "";
  if (posture === "Proactive") {
    return `When fewer than ${threshold} × ${events} arrive within ${duration(within)}${since}`;
  }
  const window = within ? ` within ${duration(within)}` : "";
  return threshold > 1
    ? `When ${threshold} × ${events} happen${window}${since}`
    : `When ${events} happens${since}`;
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

export function describeAction(action) {
  switch (action.type) {
    case "call-webhook":
      return action.url ? `Call webhook ${action.method || "POST"} ${hostOf(action.url)}` : "Call a Prefect webhook block";
    case "send-notification":
      return "Send a notification";
    case "pause-automation":
    case "resume-automation": {
      const verb = action.type === "pause-automation" ? "Pause" : "Resume";
      return action.source === "inferred"
        ? `${verb} the automation in the event`
        : `${verb} automation ${action.automation_id.slice(0, 8)}`;
    }
    case "do-nothing":
      return "Do nothing";
    default:
      return action.type;
  }
}

export function describeActions(automation) {
  const all = [...automation.actions, ...automation.actions_on_trigger];
  const parts = all.map(describeAction);
  if (automation.actions_on_resolve.length) {
    parts.push(`on resolve: ${automation.actions_on_resolve.map(describeAction).join(", ")}`);
  }
  return parts.length ? parts.join(" · ") : "No actions";
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}
