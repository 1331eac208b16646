// Markdown as a chat app shows it: headings, lists, tables, links, code blocks in monospace with
// syntax highlighting (marked, DOMPurify and highlight.js, vendored in static/vendor/).
//
// The one place where HTML is made from someone else's text. marked turns the text into an HTML
// string, and `sanitize` below is the only function that turns such a string into nodes: DOMPurify
// parses it into a fragment, keeps plain HTML elements only (no SVG, MathML, forms, images, styles or
// event handlers) and links only to http(s) and mailto. Raw HTML in the text is shown as the text it
// is, never parsed. The rest of the page builds its DOM from nodes and text (dom.js).

import DOMPurify from "../vendor/purify.es.js";
import hljs from "../vendor/highlight/core.min.js";
import bash from "../vendor/highlight/languages/bash.min.js";
import css from "../vendor/highlight/languages/css.min.js";
import diff from "../vendor/highlight/languages/diff.min.js";
import go from "../vendor/highlight/languages/go.min.js";
import javascript from "../vendor/highlight/languages/javascript.min.js";
import jsonLanguage from "../vendor/highlight/languages/json.min.js";
import python from "../vendor/highlight/languages/python.min.js";
import rust from "../vendor/highlight/languages/rust.min.js";
import shell from "../vendor/highlight/languages/shell.min.js";
import sql from "../vendor/highlight/languages/sql.min.js";
import typescript from "../vendor/highlight/languages/typescript.min.js";
import xml from "../vendor/highlight/languages/xml.min.js";
import yaml from "../vendor/highlight/languages/yaml.min.js";
import { Marked } from "../vendor/marked.esm.js";
import { h, hasBidiControls, visible } from "./dom.js";

const LANGUAGES = { bash, css, diff, go, javascript, json: jsonLanguage, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
const AUTO_LANGUAGES = Object.keys(LANGUAGES);
const AUTO_DETECT_CHARS = 20_000; // guessing a language costs a pass per language: only for short blocks

const escape = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function highlighted(code, info) {
  const language = (info || "").trim().split(/\s+/)[0].toLowerCase();
  try {
    if (language && hljs.getLanguage(language)) return { html: hljs.highlight(code, { language, ignoreIllegals: true }).value, language };
    if (!language && code.length <= AUTO_DETECT_CHARS) {
      const guess = hljs.highlightAuto(code, AUTO_LANGUAGES);
      if (guess.relevance >= 5) return { html: guess.value, language: guess.language };
    }
  } catch {
    // a grammar that trips over this text: shown plain
  }
  return { html: escape(code), language: null };
}

const marked = new Marked({
  gfm: true,
  breaks: true, // a chat message's single newlines are line breaks, as the person typed them
  renderer: {
    html: ({ text }) => escape(text), // raw HTML is shown, not obeyed
    code({ text, lang }) {
      const { html, language } = highlighted(text, lang);
      return `<pre><code class="hljs${language ? ` language-${escape(language)}` : ""}">${html}</code></pre>`;
    },
    image: ({ href, text }) => escape(`![${text}](${href})`), // no request to wherever an image points
  },
});

const PURIFY = {
  USE_PROFILES: { html: true }, // no SVG or MathML
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "img", "video", "audio", "iframe"],
  FORBID_ATTR: ["style", "class", "id", "name", "target"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
};
// highlight.js's classes are the only ones kept: they style the code, nothing else.
const KEEP_CLASS = /^(?:hljs(?:-[\w-]+)?|language-[\w-]+|[\w-]+_)$/;

// A class attribute stays only when every class in it is one of those (else it goes whole).
DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
  if (data.attrName !== "class") return;
  const classes = data.attrValue.split(/\s+/).filter(Boolean);
  if ((node.nodeName === "CODE" || node.nodeName === "SPAN") && classes.length && classes.every((c) => KEEP_CLASS.test(c))) {
    data.forceKeepAttr = true;
  } else {
    data.keepAttr = false;
  }
});
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    node.setAttribute("rel", "noopener noreferrer nofollow");
    node.setAttribute("target", "_blank");
    node.setAttribute("referrerpolicy", "no-referrer");
  }
});

// The only path from an HTML string to the page: DOMPurify parses it into a detached fragment.
function sanitize(html) {
  return DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true });
}

// Direction controls become visible markers here too, as in every other piece of user text.
function showControls(fragment) {
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) if (hasBidiControls(node.data)) found.push(node);
  for (const node of found) node.replaceWith(...visible(node.data));
}

// Each code block gets a copy button.
function addCopyButtons(fragment) {
  for (const pre of fragment.querySelectorAll("pre")) {
    const button = h("button", { type: "button", class: "copy", on: { click: () => copy(pre, button) } }, "Copy");
    pre.prepend(button);
  }
}

async function copy(pre, button) {
  const code = pre.querySelector("code") ?? pre;
  try {
    await navigator.clipboard.writeText(code.textContent);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

// The text's Markdown as nodes.
export function markdown(text) {
  const fragment = sanitize(marked.parse(text));
  showControls(fragment);
  addCopyButtons(fragment);
  // The newlines between blocks are not content (textContent is the text, as for plain text).
  return [...fragment.childNodes].filter((node) => node.nodeType !== Node.TEXT_NODE || node.data.trim() !== "");
}

// What a reader sees of the text's Markdown, as plain text: search snippets (search.js) show it
// without the markup around their words. Blocks end with a newline; a link is its text, an image its
// description, raw HTML the text it is.
export function plainText(text) {
  return plain(marked.lexer(text));
}

const BLOCKS = new Set(["paragraph", "heading", "code", "blockquote", "html"]);

function plain(tokens) {
  let text = "";
  for (const token of tokens) {
    if (token.type === "table") {
      text += `${[token.header, ...token.rows].map((row) => row.map((cell) => plain(cell.tokens)).join(" ")).join("\n")}\n`;
    } else if (token.type === "list") {
      text += `${token.items.map((item) => plain(item.tokens)).join("\n")}\n`;
    } else if (token.tokens && token.type !== "image") {
      text += plain(token.tokens);
    } else if (token.type === "br" || token.type === "space" || token.type === "hr") {
      text += "\n";
    } else if (token.type !== "def" && token.type !== "checkbox") {
      text += token.text ?? "";
    }
    if (BLOCKS.has(token.type)) text += "\n";
  }
  return text;
}
