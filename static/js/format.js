// Dates in the person's own locale and time zone.

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

export function dateTime(ms) {
  return Number.isFinite(ms) ? dateTimeFormat.format(ms) : "unknown time";
}

// Today's messages show only the time; older ones the date too.
export function when(ms) {
  if (!Number.isFinite(ms)) return "";
  return new Date(ms).toDateString() === new Date().toDateString() ? timeFormat.format(ms) : dateTime(ms);
}

// Token counts and dollars, compact ("12.3k", "$0.42") for lists and headers, full in details.
const compactFormat = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });
const countFormat = new Intl.NumberFormat();
const usdFormat = new Intl.NumberFormat("en", { style: "currency", currency: "USD", maximumFractionDigits: 2 });
const usdCompactFormat = new Intl.NumberFormat("en", { style: "currency", currency: "USD", notation: "compact", maximumFractionDigits: 1 });

export const compact = (n) => compactFormat.format(n).toLowerCase();
export const count = (n) => countFormat.format(n);

export function usd(amount) {
  if (amount > 0 && amount < 0.005) return "<$0.01";
  return amount >= 10_000 ? usdCompactFormat.format(amount) : usdFormat.format(amount);
}
