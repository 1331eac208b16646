// A line of command output as a terminal shows it. Tools print ANSI escape sequences when told to
// colour (FORCE_COLOR, --color=always) or when they draw progress: shown raw they read as
// "␛[32mPASSED␛[0m". Here SGR sequences (colours, bold, dim, italic, underline, inverse, strike)
// become styled spans; every other sequence (cursor moves, window titles, a hyperlink's markers, whose
// text stays) is dropped; and a carriage return, or erasing the line, starts it again, so a progress
// bar shows its last state. Text stays text: nodes are made from it, never parsed as markup.

import { h, visible } from "./dom.js";

// CSI (ESC [ parameters intermediates final), OSC (ESC ] ... BEL or ESC \), any other escape sequence
// (ESC intermediates final: ESC 7, ESC ( B), an ESC that starts none of them; or a carriage return. The
// escapes are what search leaves out of a message's words (models._ESCAPES_PATTERN).
const CONTROL = /\x1b(?:\[([0-?]*)[ -/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]*[0-~])?|\r/g;

// The nodes of one line.
export function terminalLine(text) {
  if (!text.includes("\x1b") && !text.includes("\r")) return visible(text);
  const style = new Style();
  let nodes = [];
  let restart = false; // a carriage return was met: the next text writes the line anew
  let last = 0;
  const write = (end) => {
    if (end <= last) return;
    if (restart) nodes = [];
    restart = false;
    nodes.push(style.wrap(text.slice(last, end)));
  };
  for (const match of text.matchAll(CONTROL)) {
    write(match.index);
    last = match.index + match[0].length;
    if (match[0] === "\r") restart = true;
    else if (match[2] === "m") style.apply(match[1]);
    else if (match[2] === "K" && (restart || match[1] === "2")) nodes = [];
  }
  write(text.length);
  return nodes.flat();
}

// What a line ends up showing: the text after its last carriage return, under the styles set before
// it (the same nodes from terminalLine, from a shorter text).
export function shownPart(line) {
  const drawn = line.replace(/\r+$/, "");
  const from = drawn.lastIndexOf("\r");
  if (from < 0) return line;
  const styles = [...line.slice(0, from).matchAll(CONTROL)].filter((match) => match[2] === "m");
  return styles.map((match) => match[0]).join("") + drawn.slice(from + 1);
}

const PARAMETER = /[;:]/;

class Style {
  constructor() {
    this.reset();
  }

  reset() {
    this.fg = this.bg = null; // a palette index (0-15), an "rgb(...)" string, or null: the default
    this.flags = new Set(); // bold, dim, italic, underline, inverse, strike
  }

  apply(parameters) {
    const codes = parameters === "" ? [0] : parameters.split(PARAMETER).map((p) => (p === "" ? 0 : Number(p)));
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      if (code === 0) this.reset();
      else if (FLAGS[code]) this.flags.add(FLAGS[code]);
      else if (UNFLAGS[code]) for (const flag of UNFLAGS[code]) this.flags.delete(flag);
      else if (code >= 30 && code <= 37) this.fg = code - 30;
      else if (code >= 90 && code <= 97) this.fg = code - 82;
      else if (code === 39) this.fg = null;
      else if (code >= 40 && code <= 47) this.bg = code - 40;
      else if (code >= 100 && code <= 107) this.bg = code - 92;
      else if (code === 49) this.bg = null;
      else if (code === 38 || code === 48) {
        const [color, used] = extended(codes, i + 1);
        i += used;
        if (code === 38) this.fg = color;
        else this.bg = color;
      }
    }
  }

  // The text under the current style: as it is when there is none.
  wrap(text) {
    const inverse = this.flags.has("inverse");
    const fg = inverse ? this.bg ?? "inverse" : this.fg;
    const bg = inverse ? this.fg ?? "inverse" : this.bg;
    if (fg === null && bg === null && this.flags.size === 0) return visible(text);
    const classes = [...this.flags].filter((flag) => flag !== "inverse").map((flag) => `ansi-${flag}`);
    const span = h("span", {}, visible(text));
    for (const [color, property, prefix] of [[fg, "color", "fg"], [bg, "background-color", "bg"]]) {
      // 16 colours from the page's palette (app.css); 256 and 24-bit ones as they are (the style
      // object, which the page's Content-Security-Policy allows, unlike a style attribute).
      if (typeof color === "number" || color === "inverse") classes.push(`ansi-${prefix}-${color}`);
      else if (color !== null) span.style.setProperty(property, color);
    }
    span.className = classes.join(" ");
    return span;
  }
}

const FLAGS = { 1: "bold", 2: "dim", 3: "italic", 4: "underline", 7: "inverse", 9: "strike" };
const UNFLAGS = { 22: ["bold", "dim"], 23: ["italic"], 24: ["underline"], 27: ["inverse"], 29: ["strike"] };

// 38;5;N (256 colours) or 38;2;R;G;B (24-bit): [colour or null, how many codes it took].
function extended(codes, at) {
  const byte = (n) => Number.isInteger(n) && n >= 0 && n <= 255;
  if (codes[at] === 5) {
    const n = codes[at + 1];
    if (!byte(n)) return [null, 2];
    if (n < 16) return [n, 2];
    if (n >= 232) {
      const grey = 8 + 10 * (n - 232);
      return [`rgb(${grey}, ${grey}, ${grey})`, 2];
    }
    const level = (v) => (v === 0 ? 0 : 55 + 40 * v); // the 6x6x6 cube's steps
    const cube = n - 16;
    return [`rgb(${level(Math.floor(cube / 36))}, ${level(Math.floor(cube / 6) % 6)}, ${level(cube % 6)})`, 2];
  }
  if (codes[at] === 2) {
    const rgb = codes.slice(at + 1, at + 4);
    return [rgb.length === 3 && rgb.every(byte) ? `rgb(${rgb.join(", ")})` : null, 4];
  }
  return [null, 0];
}
