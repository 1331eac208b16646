// Desktop notifications from the page (Notification API) while its tab is hidden and an agent needs
// the person. Permission is asked only from a click (the Settings switch), never on load; whether
// the person wants them is kept in this browser (localStorage).

const KEY = "switchboard.notifications";

export const supported = () => "Notification" in window;

export function enabled() {
  try {
    return localStorage.getItem(KEY) === "on";
  } catch {
    return false;
  }
}

export function setEnabled(on) {
  try {
    localStorage.setItem(KEY, on ? "on" : "off");
  } catch {
    // storage disabled: the choice lasts as long as the page
  }
}

// Called from a click: the browser asks the person when it has not been told yet.
export async function ask() {
  if (Notification.permission === "default") return Notification.requestPermission();
  return Notification.permission;
}

// Shows {title, body, tag} when the tab is hidden and notifications are on and allowed; a click
// brings the tab forward and runs `open`. One notification per tag: a newer one replaces it.
export function notify({ title, body, tag }, open) {
  if (!supported() || !enabled() || Notification.permission !== "granted" || document.visibilityState !== "hidden") return null;
  const notification = new Notification(title, { body, tag, icon: "/static/favicon.svg" });
  notification.onclick = () => {
    window.focus();
    notification.close();
    open();
  };
  return notification;
}
