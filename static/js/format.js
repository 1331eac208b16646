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
