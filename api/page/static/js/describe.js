// Automations in words, as the list and the detail view show them.
export { describeTrigger, duration } from "./triggers.js";
import { describeTemporal, isTemporal } from "./temporal.js";

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

// "slack://…" → "slack", "json://host:port/path" → "json://host:port": where, not the secrets.
function service(url) {
  const [scheme, rest = ""] = String(url).split("://");
  const host = rest.split(/[/?#]/)[0].split("@").pop();
  return ["json", "form", "xml", "jsons", "forms", "xmls"].includes(scheme) && host ? `${scheme}://${host}` : scheme;
}

const short = (id) => String(id ?? "").slice(0, 8);

// "Pause deployment 1234abcd" or "Pause the deployment of the event".
function targeted(verb, kind, action) {
  return action.source === "inferred"
    ? `${verb} the ${kind} of the event`
    : `${verb} ${kind} ${short(action[`${kind.replace(" ", "_")}_id`])}`;
}

export function describeAction(action) {
  switch (action.type) {
    case "call-webhook":
      return action.url ? `Call webhook ${action.method || "POST"} ${hostOf(action.url)}` : "Call a Prefect webhook block";
    case "send-notification": {
      if (!action.url) return "Send a notification through a Prefect block";
      const urls = Array.isArray(action.url) ? action.url : [action.url];
      return `Send a notification to ${urls.map(service).join(", ")}`;
    }
    case "pause-automation": return targeted("Pause", "automation", action);
    case "resume-automation": return targeted("Resume", "automation", action);
    case "run-deployment": return targeted("Run", "deployment", action);
    case "pause-deployment": return targeted("Pause", "deployment", action);
    case "resume-deployment": return targeted("Resume", "deployment", action);
    case "pause-work-queue": return targeted("Pause", "work queue", action);
    case "resume-work-queue": return targeted("Resume", "work queue", action);
    case "pause-work-pool": return targeted("Pause", "work pool", action);
    case "resume-work-pool": return targeted("Resume", "work pool", action);
    case "cancel-flow-run": return "Cancel the flow run";
    case "suspend-flow-run": return "Suspend the flow run";
    case "resume-flow-run": return "Resume the flow run";
    case "change-flow-run-state": return `Set the flow run to ${action.state}`;
    case "do-nothing": return "Do nothing";
    default: return isTemporal(action.type) ? describeTemporal(action) : action.type;
  }
}

export function describeActions(automation) {
  const parts = [...automation.actions, ...automation.actions_on_trigger].map(describeAction);
  if (automation.actions_on_resolve.length) {
    parts.push(`on resolve: ${automation.actions_on_resolve.map(describeAction).join(", ")}`);
  }
  return parts.length ? parts.join(" · ") : "No actions";
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

// "3 min ago", for the list's "last fired".
export function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}
