/* Slack mrkdwn to HTML: mentions, channel links, user groups, dates, links, *bold*,
   _italic_, ~strike~, `code`, ```pre```, > quotes and a few emoji, as Slack shows them. */
(() => {
"use strict";

const EMOJI = {
  white_check_mark: "✅", warning: "⚠️", rotating_light: "🚨", hourglass: "⌛", x: "❌",
  white_circle: "⚪", no_entry_sign: "🚫", wastebasket: "🗑️", lock: "🔒", large_green_circle: "🟢",
  key: "🔑", wave: "👋", tada: "🎉", no_entry: "⛔", link: "🔗", fast_forward: "⏩",
  arrows_counterclockwise: "🔄", arrow_forward: "▶️", zap: "⚡", sunny: "☀️", sparkles: "✨",
  raising_hand: "🙋", hourglass_flowing_sand: "⏳", grey_question: "❔", email: "📧", clock3: "🕒",
  bell: "🔔", ballot_box_with_check: "☑️", thumbsup: "👍", "+1": "👍", thumbsdown: "👎", eyes: "👀",
  heart: "❤️", rocket: "🚀", fire: "🔥", memo: "📝", calendar: "📅", bust_in_silhouette: "👤",
  busts_in_silhouette: "👥", gear: "⚙️", pencil2: "✏️", mag: "🔍", inbox_tray: "📥", outbox_tray: "📤",
  heavy_check_mark: "✔️", red_circle: "🔴", large_blue_circle: "🔵", information_source: "ℹ️",
  point_right: "👉", moneybag: "💰", package: "📦", bulb: "💡", stopwatch: "⏱️", repeat: "🔁",
};

/* Text stand-ins for the emoji the bot uses, drawn from symbols ordinary fonts have: used
   only when this browser has no colour emoji font (a headless Chromium without one shows
   boxes instead). A colour marks what the emoji's colour said (done, stop, warning). */
const TEXT_EMOJI = {
  white_check_mark: ["✔", "green"], heavy_check_mark: ["✔", "green"], ballot_box_with_check: ["☑", "green"],
  warning: ["⚠", "amber"], rotating_light: ["⚠", "red"], x: ["✖", "red"], no_entry_sign: ["⊘", "red"],
  no_entry: ["⊘", "red"], wastebasket: ["✗", ""], white_circle: ["○", ""], large_green_circle: ["●", "green"],
  red_circle: ["●", "red"], large_blue_circle: ["●", "blue"], hourglass: ["◷", ""],
  hourglass_flowing_sand: ["◷", ""], stopwatch: ["◷", ""], clock3: ["◷", ""], lock: ["▣", ""],
  key: ["⚷", ""], wave: ["☺", ""], tada: ["★", "amber"], sparkles: ["✧", "amber"], link: ["↗", ""],
  fast_forward: ["»", ""], rewind: ["«", ""], arrows_counterclockwise: ["↻", ""], repeat: ["⟳", ""],
  arrow_forward: ["▶", ""], zap: ["⚡", "amber"], sunny: ["☀", "amber"], raising_hand: ["☺", ""],
  memo: ["✎", ""], pencil2: ["✏", ""], grey_question: ["?", ""], email: ["✉", ""], bell: ["⚑", ""],
  thumbsup: ["+1", ""], "+1": ["+1", ""], thumbsdown: ["−1", ""], eyes: ["⌕", ""], mag: ["⌕", ""],
  heart: ["♥", "red"], rocket: ["✈", ""], fire: ["▲", "red"], calendar: ["▦", ""], gear: ["⚙", ""],
  bust_in_silhouette: ["☺", ""], busts_in_silhouette: ["☺☺", ""], inbox_tray: ["⇩", ""],
  outbox_tray: ["⇧", ""], information_source: ["ℹ", "blue"], point_right: ["☞", ""],
  moneybag: ["$", "green"], package: ["▣", ""], bulb: ["✦", "amber"],
};

/* Does this browser draw emoji in colour? A thumbs up drawn on a canvas has coloured pixels
   with an emoji font, grey ones (a box or a plain glyph) without. */
function hasColourEmoji() {
  try {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 24;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.textBaseline = "top";
    ctx.font = "18px sans-serif";
    ctx.fillText("\u{1F44D}", 0, 0);
    const d = ctx.getImageData(0, 0, 24, 24).data;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] > 0 && (Math.abs(d[i] - d[i + 1]) > 24 || Math.abs(d[i + 1] - d[i + 2]) > 24)) return true;
    }
    return false;
  } catch (e) {
    return true;
  }
}

const COLOUR_EMOJI = hasColourEmoji();
const EMOJI_CLASS = {};
if (!COLOUR_EMOJI) {
  for (const [name, [text, colour]] of Object.entries(TEXT_EMOJI)) {
    EMOJI[name] = text;
    EMOJI_CLASS[name] = colour ? `emoji-text ${colour}` : "emoji-text";
  }
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

function escapeHtml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function unescapeSlack(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function ordinal(n) {
  const s = ["th", "st", "nd", "rd"], v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
}

function pad(n) { return String(n).padStart(2, "0"); }

function relativeDay(d) {
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const now = new Date();
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const diff = Math.round((day - today) / 86400000);
  return diff === 0 ? "today" : diff === -1 ? "yesterday" : diff === 1 ? "tomorrow" : null;
}

/* Slack's <!date^seconds^format|fallback> tokens, in the viewer's time zone. */
function formatDate(seconds, format) {
  const d = new Date(Number(seconds) * 1000);
  if (isNaN(d.getTime())) return null;
  const hours = d.getHours() % 12 || 12, ampm = d.getHours() < 12 ? "AM" : "PM";
  const short = `${MONTHS[d.getMonth()].slice(0, 3)} ${d.getDate()}, ${d.getFullYear()}`;
  const full = `${MONTHS[d.getMonth()]} ${ordinal(d.getDate())}, ${d.getFullYear()}`;
  const long = `${DAYS[d.getDay()]}, ${full}`;
  const rel = relativeDay(d);
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  const tokens = {
    date_num: `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`,
    date: full, date_short: short, date_long: long,
    date_pretty: rel ? cap(rel) : full, date_short_pretty: rel ? cap(rel) : short,
    date_long_pretty: rel ? cap(rel) : long,
    time: `${hours}:${pad(d.getMinutes())} ${ampm}`,
    time_secs: `${hours}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${ampm}`,
    ago: agoText(d),
  };
  return format.replace(/\{(\w+)\}/g, (m, k) => (k in tokens ? tokens[k] : m));
}

function agoText(d) {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const abs = Math.abs(s), unit = abs < 60 ? ["second", abs] : abs < 3600 ? ["minute", Math.round(abs / 60)]
    : abs < 86400 ? ["hour", Math.round(abs / 3600)] : ["day", Math.round(abs / 86400)];
  const text = `${unit[1]} ${unit[0]}${unit[1] === 1 ? "" : "s"}`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

/* One <...> token as HTML. dir: {users, channels, groups, me}. */
function tokenHtml(inner, dir) {
  const [target, label] = splitOnce(inner, "|");
  if (target.startsWith("@")) {
    const id = target.slice(1);
    const user = dir.users[id];
    const name = user ? user.name : (label || id);
    const cls = id === dir.me ? "mention me" : "mention";
    return `<span class="${cls}" data-user="${escapeHtml(id)}">@${escapeHtml(name)}</span>`;
  }
  if (target.startsWith("#")) {
    const id = target.slice(1);
    const ch = dir.channels[id];
    const name = ch ? ch.name : (label || id);
    return `<a class="channel-link" href="${escapeHtml(dir.channelHref(id))}" data-channel="${escapeHtml(id)}">#${escapeHtml(name)}</a>`;
  }
  if (target.startsWith("!subteam^")) {
    const id = target.slice(9);
    const group = dir.groups[id];
    const handle = group ? group.handle : (label || id).replace(/^@/, "");
    return `<span class="mention" data-group="${escapeHtml(id)}">@${escapeHtml(handle)}</span>`;
  }
  if (target.startsWith("!date^")) {
    const parts = target.split("^");
    const shown = formatDate(parts[1], unescapeSlack(parts[2] || "{date}"));
    const text = escapeHtml(shown === null ? unescapeSlack(label || "") : shown);
    return parts[3] ? `<a href="${escapeHtml(unescapeSlack(parts[3]))}" target="_blank" rel="noopener">${text}</a>`
      : `<time datetime="${new Date(Number(parts[1]) * 1000).toISOString()}">${text}</time>`;
  }
  if (target.startsWith("!")) {
    return `<span class="mention">@${escapeHtml(target.slice(1))}</span>`;
  }
  const url = unescapeSlack(target);
  const safe = /^(https?:|mailto:|slack:)/i.test(url) ? url : "#";
  return `<a href="${escapeHtml(safe)}" target="_blank" rel="noopener">${escapeHtml(unescapeSlack(label || target))}</a>`;
}

function splitOnce(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

function emojiHtml(text) {
  return text.replace(/:([a-z0-9_+-]+):/g, (m, name) => (EMOJI[name] ? `<span class="${EMOJI_CLASS[name] || "emoji"}" title=":${name}:">${EMOJI[name]}</span>` : m));
}

/* mrkdwn → HTML (plain: only escapes, mentions and emoji, as for plain_text). */
function mrkdwn(text, dir, plain) {
  const stash = [];
  const keep = (html) => `\u0000${stash.push(html) - 1}\u0000`;
  let s = String(text || "");
  if (plain) return emojiHtml(escapeHtml(s));
  // code first: nothing inside it is formatted
  s = s.replace(/```([\s\S]*?)```/g, (m, code) => keep(`<pre>${escapeHtml(unescapeSlack(code.replace(/^\n/, "")))}</pre>`));
  s = s.replace(/`([^`\n]+)`/g, (m, code) => keep(`<code>${escapeHtml(unescapeSlack(code))}</code>`));
  s = s.replace(/<([^<>\s][^<>]*)>/g, (m, inner) => keep(tokenHtml(inner, dir)));
  s = escapeHtml(unescapeSlack(s));
  s = s.replace(/(^|[\s(>\u0000])\*([^*\n]+)\*(?=$|[\s).,!?:;…\u0000])/g, "$1<b>$2</b>");
  s = s.replace(/(^|[\s(>\u0000])_([^_\n]+)_(?=$|[\s).,!?:;…\u0000])/g, "$1<i>$2</i>");
  s = s.replace(/(^|[\s(>\u0000])~([^~\n]+)~(?=$|[\s).,!?:;…\u0000])/g, "$1<s>$2</s>");
  s = s.split("\n").map((line) => (line.startsWith("&gt; ") || line === "&gt;"
    ? `<blockquote>${line.replace(/^&gt; ?/, "")}</blockquote>` : line)).join("\n")
    .replace(/<\/blockquote>\n/g, "</blockquote>");
  s = emojiHtml(s);
  return s.replace(/\u0000(\d+)\u0000/g, (m, i) => stash[Number(i)]);
}

window.Mrkdwn = { mrkdwn, escapeHtml, formatDate, EMOJI, COLOUR_EMOJI };
})();
