// The Settings dialog: desktop notifications on or off (notify.js), Web Push on this device (the
// service worker at /sw.js subscribed with the server's VAPID key, the subscription registered under
// this page's token), and the account's webhooks with their last run (add and remove too).

import { ApiError, json } from "./api.js";
import { h, userText } from "./dom.js";
import { when } from "./format.js";
import * as notifications from "./notify.js";
import { attempt } from "./view.js";

const $ = (id) => document.getElementById(id);

const pushSupported = () => window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window;

// The VAPID key is base64url; pushManager.subscribe wants its bytes.
function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(base64url.length / 4) * 4, "=");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

async function currentSubscription() {
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

function lastRun(run) {
  if (!run) return "never run";
  const detail = attempt(run).join(", ");
  return `last run ${run.status}${detail ? ` (${detail})` : ""} · ${run.event} · ${when(Date.parse(run.created_at))}`;
}

export class Settings {
  constructor() {
    this.dialog = $("settings-dialog");
    $("settings-close").addEventListener("click", () => this.dialog.close());
    $("notify-switch").addEventListener("change", () => this.toggleNotifications());
    $("push-switch").addEventListener("change", () => this.togglePush());
    $("webhook-form").addEventListener("submit", (event) => this.addWebhook(event));
  }

  open() {
    $("webhook-problem").hidden = true;
    $("webhook-secret").hidden = true;
    this.showNotifications();
    this.showPush();
    this.loadWebhooks();
    this.dialog.showModal();
  }

  showNotifications(problem) {
    const toggle = $("notify-switch");
    const status = $("notify-status");
    if (!notifications.supported()) {
      toggle.checked = false;
      toggle.disabled = true;
      status.textContent = "This browser cannot show notifications.";
      return;
    }
    toggle.checked = notifications.enabled() && Notification.permission === "granted";
    status.textContent = problem || (toggle.checked ? "On: a hidden tab tells you about approvals and sessions waiting for you."
      : Notification.permission === "denied" ? "The browser blocks notifications for this page: allow them in its site settings."
        : "Off.");
  }

  async toggleNotifications() {
    const toggle = $("notify-switch");
    if (!toggle.checked) {
      notifications.setEnabled(false);
      return this.showNotifications();
    }
    const permission = await notifications.ask();
    notifications.setEnabled(permission === "granted");
    this.showNotifications(permission === "granted" ? null : "Not turned on: the browser did not allow notifications for this page.");
  }

  async showPush() {
    const toggle = $("push-switch");
    const status = $("push-status");
    if (!pushSupported()) {
      toggle.checked = false;
      toggle.disabled = true;
      status.textContent = "Push needs a secure page (HTTPS or localhost) in a browser with service workers.";
      return;
    }
    toggle.checked = Boolean(await currentSubscription().catch(() => null));
    status.textContent = toggle.checked ? "On: this device is told about approvals and waiting sessions, page open or not." : "Off.";
  }

  async togglePush() {
    const toggle = $("push-switch");
    const status = $("push-status");
    toggle.disabled = true;
    try {
      if (toggle.checked) {
        status.textContent = "Subscribing…";
        const registration = await navigator.serviceWorker.register("/sw.js");
        await navigator.serviceWorker.ready;
        const { public_key: key } = await json("GET", "/api/push/key");
        const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
        await json("POST", "/api/push/subscriptions", subscription.toJSON());
      } else {
        const subscription = await currentSubscription();
        if (subscription) {
          try {
            await json("DELETE", "/api/push/subscriptions", { endpoint: subscription.endpoint });
          } catch (error) {
            // Registered under another token (or already gone): this browser still stops receiving.
            if (!(error instanceof ApiError && error.status === 404)) throw error;
          }
          await subscription.unsubscribe();
        }
      }
      toggle.disabled = false;
      await this.showPush();
    } catch (error) {
      toggle.disabled = false;
      toggle.checked = !toggle.checked;
      status.textContent = `Push not changed: ${error.message}`;
    }
  }

  async loadWebhooks() {
    const list = $("webhook-list");
    let items;
    try {
      ({ items } = await json("GET", "/api/webhooks"));
    } catch (error) {
      list.replaceChildren(h("li", { class: "problem" }, `Could not load webhooks: ${error.message}`));
      return;
    }
    list.replaceChildren(...(items.length ? items.map((webhook) => this.webhookItem(webhook))
      : [h("li", { class: "note" }, "No webhooks. Add one (ntfy, Slack or your own endpoint) to be told anywhere.")]));
  }

  webhookItem(webhook) {
    const remove = h("button", { type: "button", class: "danger", "aria-label": `Remove webhook ${webhook.id}` }, "Remove");
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        await json("DELETE", `/api/webhooks/${webhook.id}`);
      } catch (error) {
        $("webhook-problem").textContent = `Not removed: ${error.message}`;
        $("webhook-problem").hidden = false;
      }
      this.loadWebhooks();
    });
    return h("li", { class: "webhook", dataset: { webhookId: webhook.id, lastRun: webhook.last_run?.status ?? "none" } },
      h("span", { class: "webhook-url" }, userText(webhook.url)),
      h("span", { class: "note" }, `${webhook.format} · ${webhook.events.join(", ")}`),
      h("span", { class: "webhook-run", dataset: { status: webhook.last_run?.status ?? "none" } }, lastRun(webhook.last_run)),
      remove);
  }

  async addWebhook(event) {
    event.preventDefault();
    const problem = $("webhook-problem");
    const secret = $("webhook-secret");
    problem.hidden = secret.hidden = true;
    try {
      const created = await json("POST", "/api/webhooks", { url: $("webhook-url").value.trim(), format: $("webhook-format").value });
      $("webhook-url").value = "";
      secret.replaceChildren("Added. Its signing secret, shown this once: ", h("code", {}, created.secret));
      secret.hidden = false;
    } catch (error) {
      problem.textContent = `Not added: ${error.message}`;
      problem.hidden = false;
    }
    this.loadWebhooks();
  }
}
