// Tokens and cost: the compact line a session shows in the list and its header ("12.3k tok · $0.42"),
// and the Usage view (#usage): the totals of the last 30 UTC days, a bar per day drawn as inline SVG
// with DOM calls (days without usage are drawn too), and the most expensive sessions as links that
// open them. Everything comes from GET /api/usage; the view refetches when a report changes a sum.

import { json } from "./api.js";
import { h, userText } from "./dom.js";
import { compact, count, usd } from "./format.js";

const DAYS = 30;
const DAY_MS = 86_400_000;
const TOP = 10;
const REFRESH_MS = 2000; // live reports refetch the view at most this often
const SVG = "http://www.w3.org/2000/svg";

const tokensOf = (u) => u.input_tokens + u.output_tokens + u.cache_creation_tokens + u.cache_read_tokens;

// "12.3k tok · $0.42", or "" for a session without usage.
export function usageText(usage) {
  if (!usage) return "";
  const tokens = tokensOf(usage);
  if (tokens === 0 && usage.cost_usd === 0) return "";
  return `${compact(tokens)} tok · ${usd(usage.cost_usd)}`;
}

function usageDetail(u) {
  return `input ${count(u.input_tokens)}, output ${count(u.output_tokens)}, ` +
    `cache write ${count(u.cache_creation_tokens)}, cache read ${count(u.cache_read_tokens)}`;
}

// The usage line in an element made for it: hidden when there is none, the counts in its tooltip.
export function showUsage(element, usage) {
  const text = usageText(usage);
  element.hidden = !text;
  if (element.textContent !== text) element.textContent = text;
  element.title = text ? usageDetail(usage) : "";
}

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  element.append(...children);
  return element;
}

// The UTC days of the window, oldest first, as "YYYY-MM-DD" (the keys /api/usage groups by).
function lastDays(now = Date.now()) {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  return Array.from({ length: DAYS }, (_, i) => new Date(today - (DAYS - 1 - i) * DAY_MS).toISOString().slice(0, 10));
}

const dayLabel = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const dayTitle = new Intl.DateTimeFormat(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });

// The smallest 1, 2 or 5 times a power of ten at or above `value` (the chart's top).
function niceCeiling(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= value * (1 - 1e-9));
}

const MEASURES = {
  cost: { value: (u) => u.cost_usd, axis: (v) => usd(v) },
  tokens: { value: tokensOf, axis: (v) => compact(v) },
};

// The chart: one column per day (an invisible full-height target carrying the tooltip, and the bar),
// three y-axis labels with grid lines, and a date under every seventh day counting back from today.
export function drawChart(days, byDay, measure, width) {
  const { value, axis } = MEASURES[measure];
  const height = 200;
  const margin = { top: 10, right: 8, bottom: 24, left: measure === "cost" ? 56 : 44 };
  const plotWidth = Math.max(width - margin.left - margin.right, DAYS);
  const plotHeight = height - margin.top - margin.bottom;
  const column = plotWidth / DAYS;
  const top = niceCeiling(Math.max(0, ...days.map((day) => (byDay.get(day) ? value(byDay.get(day)) : 0))));
  const y = (v) => margin.top + plotHeight - (v / top) * plotHeight;
  const chart = svg("svg", { width: margin.left + plotWidth + margin.right, height, class: "chart",
    role: "img", "aria-label": `${measure === "cost" ? "Cost" : "Tokens"} per day, last ${DAYS} days (UTC)` });
  for (const tick of [0, top / 2, top]) {
    chart.append(
      svg("line", { class: "grid", x1: margin.left, x2: margin.left + plotWidth, y1: y(tick), y2: y(tick) }),
      svg("text", { class: "axis y-label", x: margin.left - 6, y: y(tick), "text-anchor": "end", "dominant-baseline": "middle" }, axis(tick)));
  }
  days.forEach((day, i) => {
    const usage = byDay.get(day);
    const amount = usage ? value(usage) : 0;
    const x = margin.left + i * column;
    const date = new Date(`${day}T00:00:00Z`);
    const tip = usage && (usage.cost_usd || tokensOf(usage))
      ? `${dayTitle.format(date)} (UTC): ${usd(usage.cost_usd)}, ${count(tokensOf(usage))} tokens (${usageDetail(usage)})`
      : `${dayTitle.format(date)} (UTC): no usage`;
    const barHeight = (amount / top) * plotHeight;
    chart.append(svg("g", { class: "day", "data-day": day, "data-amount": amount },
      svg("title", {}, tip),
      svg("rect", { class: "target", x, y: margin.top, width: column, height: plotHeight }),
      svg("rect", { class: "bar", x: x + column * 0.15, y: y(amount), width: column * 0.7, height: barHeight })));
    if ((DAYS - 1 - i) % 7 === 0) {
      const last = i === DAYS - 1; // today's label ends at the edge instead of crossing it
      chart.append(svg("text", { class: "axis x-label", x: last ? x + column : x + column / 2, y: height - 6,
        "text-anchor": last ? "end" : "middle" }, dayLabel.format(date)));
    }
  });
  return chart;
}

export class UsageView {
  // label(id): how the page names a session it knows (null for one it does not)
  constructor(elements, label) {
    this.el = elements;
    this.label = label;
    this.shown = false;
    this.generation = 0; // bumped on every load: an older answer (or another token's) is dropped
    this.data = null;
    this.measure = "cost";
    this.timer = 0;
    elements.close.addEventListener("click", () => this.leave(true));
    for (const radio of elements.measures) {
      radio.addEventListener("change", () => {
        this.measure = radio.value;
        this.drawChart();
      });
    }
    new ResizeObserver(() => this.shown && this.data && this.drawChart()).observe(elements.chart);
    window.addEventListener("hashchange", () => this.route());
  }

  // Shown exactly while the address is #usage.
  route() {
    if (location.hash === "#usage") this.show();
    else this.hide();
  }

  show() {
    const first = !this.shown;
    this.shown = true;
    document.body.dataset.view = "usage";
    this.el.screen.hidden = false;
    this.el.link.setAttribute("aria-current", "page");
    this.load();
    if (first) this.el.heading.focus();
  }

  hide() {
    if (!this.shown) return;
    this.shown = false;
    clearTimeout(this.timer);
    this.timer = 0;
    delete document.body.dataset.view;
    this.el.screen.hidden = true;
    this.el.link.removeAttribute("aria-current");
  }

  // Back to the sessions (the close button, or a session opened from elsewhere): a new history entry,
  // so the browser's Back returns here.
  leave(byHand = false) {
    if (!this.shown) return;
    if (location.hash === "#usage") history.pushState(null, "", location.pathname + location.search);
    this.hide();
    if (byHand) this.el.link.focus();
  }

  // A usage report changed a sum somewhere: refetch, at most every REFRESH_MS.
  changed() {
    if (this.shown && !this.timer) this.timer = setTimeout(() => { this.timer = 0; if (this.shown) this.load(); }, REFRESH_MS);
  }

  async load() {
    const generation = ++this.generation;
    const days = lastDays();
    const from = new Date(`${days[0]}T00:00:00Z`).toISOString();
    this.el.screen.setAttribute("aria-busy", "true");
    let byDay;
    let bySession;
    try {
      [byDay, bySession] = await Promise.all([
        json("GET", `/api/usage?group=day&from=${encodeURIComponent(from)}`),
        json("GET", `/api/usage?group=session&limit=${TOP}&from=${encodeURIComponent(from)}`),
      ]);
    } catch (error) {
      if (generation !== this.generation) return;
      this.el.screen.setAttribute("aria-busy", "false");
      this.el.problem.textContent = `Could not load usage: ${error.message}`;
      this.el.problem.hidden = false;
      return;
    }
    if (generation !== this.generation) return;
    this.el.screen.setAttribute("aria-busy", "false");
    this.el.problem.hidden = true;
    this.data = { days, byDay: new Map(byDay.items.map((item) => [item.day, item])), total: byDay.total, sessions: bySession.items };
    const empty = usageText(byDay.total) === "";
    this.el.empty.hidden = !empty;
    this.el.data.hidden = empty;
    if (empty) return;
    this.drawTotals();
    this.drawChart();
    this.drawSessions();
  }

  drawTotals() {
    const total = this.data.total;
    const rows = [["Cost", usd(total.cost_usd)], ["Tokens", count(tokensOf(total))], ["Input", count(total.input_tokens)],
      ["Output", count(total.output_tokens)], ["Cache write", count(total.cache_creation_tokens)],
      ["Cache read", count(total.cache_read_tokens)]];
    this.el.totals.replaceChildren(...rows.map(([name, value]) => h("div", {}, h("dt", {}, name), h("dd", {}, value))));
  }

  // The chart, and the same days as a table for screen readers (an SVG's bars are not read out).
  drawChart() {
    const { days, byDay } = this.data;
    const width = Math.max(this.el.chart.clientWidth, 240);
    const row = (day) => {
      const usage = byDay.get(day);
      return h("tr", {}, h("th", { scope: "row" }, day),
        h("td", {}, usd(usage?.cost_usd ?? 0)), h("td", {}, count(usage ? tokensOf(usage) : 0)));
    };
    this.el.chart.replaceChildren(drawChart(days, byDay, this.measure, width),
      h("table", { class: "visually-hidden" }, h("caption", {}, "Usage per UTC day"),
        h("tr", {}, h("th", { scope: "col" }, "Day"), h("th", { scope: "col" }, "Cost"), h("th", { scope: "col" }, "Tokens")),
        days.map(row)));
  }

  drawSessions() {
    this.el.sessions.replaceChildren(...this.data.sessions.map((item) => {
      const name = item.title || this.label(item.session_id) || `Session ${item.session_id}`;
      return h("li", {},
        h("a", { href: `#session=${encodeURIComponent(item.session_id)}`, class: "usage-session" }, userText(name)),
        h("span", { class: "usage-cost", title: usageDetail(item) }, usageText(item) || usd(0)));
    }));
  }
}
