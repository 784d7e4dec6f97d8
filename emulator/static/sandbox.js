/* The sandbox page: who you are (per tab), channels, DMs, App Home, the message box, modals,
   threads, reactions; live through server-sent events. */
(() => {
"use strict";

const { el, renderBlocks, formValues, plainText } = Blocks;
const $ = (id) => document.getElementById(id);
const QUICK_REACTIONS = ["thumbsup", "white_check_mark", "eyes", "tada", "rotating_light", "heart"];

const state = {
  me: null, view: "C0GENERAL", thread: null, screen: null,
  modalKey: null, homeKey: null, channelKey: null, picker: null,
};

function params() { return new URLSearchParams(location.search); }

function initialState() {
  const q = params();
  state.me = q.get("as") || sessionStorage.getItem("sandbox.as") || "U0ALICE";
  state.view = q.get("view") || sessionStorage.getItem("sandbox.view") || "C0GENERAL";
  sessionStorage.setItem("sandbox.as", state.me);
}

function href(as, view) { return `?as=${encodeURIComponent(as)}&view=${encodeURIComponent(view)}`; }

function go(as, view, push) {
  const changedPerson = as !== state.me;
  state.me = as; state.view = view;
  if (changedPerson) { state.thread = null; state.modalKey = null; state.homeKey = null; }
  sessionStorage.setItem("sandbox.as", as);
  sessionStorage.setItem("sandbox.view", view);
  if (push) history.pushState({}, "", href(as, view));
  state.channelKey = null; state.picker = null;
  if (view === "home") openedHome();
  refresh();
}

window.addEventListener("popstate", () => { const q = params(); go(q.get("as") || state.me, q.get("view") || state.view, false); });

async function api(name, body) {
  const res = await fetch(`/sandbox/api/${name}`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ as: state.me, ...body }),
  });
  let answer = {};
  try { answer = await res.json(); } catch (e) { answer = { ok: false, error: `HTTP ${res.status}` }; }
  if (!answer.ok) showBanner(answer.error || `HTTP ${res.status}`);
  return answer;
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = !text;
  if (text) setTimeout(() => { if (banner.textContent === text) banner.hidden = true; }, 8000);
}

/* ---------------------------------------------------------------- directory */

function directory(screen) {
  const dir = {
    me: state.me, users: {}, channels: {}, groups: {},
    peopleList: screen.people, channelList: screen.channels,
    channelHref: (id) => href(state.me, id),
  };
  for (const p of screen.people) dir.users[p.id] = p;
  dir.users[screen.bot.id] = { id: screen.bot.id, name: screen.bot.name, real_name: "Flowbot" };
  for (const c of screen.channels) dir.channels[c.id] = c;
  for (const d of screen.dms) dir.channels[d.id] = { id: d.id, name: d.name };
  for (const g of screen.groups) dir.groups[g.id] = g;
  window.SandboxDir = dir;
  return dir;
}

function link(text, view, as, extra) {
  const a = el("a", { href: href(as || state.me, view), ...(extra || {}) }, text);
  if ((as || state.me) === state.me && view === state.view) a.setAttribute("aria-current", "page");
  a.addEventListener("click", (ev) => { ev.preventDefault(); go(as || state.me, view, true); });
  return a;
}

function renderSidebar(screen) {
  const me = $("me");
  const options = screen.people.map((p) => el("option", { value: p.id, selected: p.id === state.me }, `${p.real_name} (@${p.name})${p.admin ? " · admin" : ""}`));
  me.replaceChildren(...options);
  const home = $("home-link");
  home.href = href(state.me, "home");
  if (state.view === "home") home.setAttribute("aria-current", "page"); else home.removeAttribute("aria-current");
  $("channels").replaceChildren(...screen.channels.map((c) => el("li", {}, link(`${c.private ? Mrkdwn.EMOJI.lock : "#"} ${c.name}`, c.id, null, c.private ? { "aria-label": `# ${c.name} (private)` } : {}))));
  const dms = screen.dms.length ? screen.dms : [{ id: `D${state.me.slice(1)}`, name: "flowbot", unread: 0 }];
  $("dms").replaceChildren(...dms.map((d) => el("li", {}, link(`flowbot (app)`, d.id, null, { "aria-label": "Direct message with flowbot" }),
  )));
  $("people").replaceChildren(...screen.people.map((p) => el("li", {},
    link(`${p.real_name} (@${p.name})${p.id === state.me ? " — you" : ""}`, state.view, p.id, { title: `Be ${p.real_name} in this tab` }))));
  $("groups").replaceChildren(...screen.groups.map((g) => el("li", {}, el("small", {},
    `@${g.handle}: ${g.users.map((u) => "@" + ((screen.people.find((p) => p.id === u) || {}).name || u)).join(", ")}`))));
}

/* ---------------------------------------------------------------- messages */

function timeOf(ts) {
  const d = new Date(Number(ts) * 1000);
  return `${d.getHours() % 12 || 12}:${String(d.getMinutes()).padStart(2, "0")} ${d.getHours() < 12 ? "AM" : "PM"}`;
}

function messageNode(msg, dir, channel, inThread, replies) {
  const isBot = !!msg.bot_id;
  const who = isBot ? { name: "flowbot", real_name: "Flowbot" } : (dir.users[msg.user] || { name: msg.user, real_name: msg.user });
  const ctx = {
    dir, onAction: (blockId, actionId, raw) => api("action", { where: "message", channel, ts: msg.ts, block_id: blockId, action_id: actionId, value: raw }),
  };
  const body = el("div", { class: "msg-body" },
    el("div", { class: "msg-head" },
      el("span", { class: "who" }, isBot ? "Flowbot" : who.real_name),
      isBot ? el("span", { class: "app" }, "APP") : null,
      el("time", { datetime: new Date(Number(msg.ts) * 1000).toISOString() }, timeOf(msg.ts)),
      msg.ephemeral ? el("span", { class: "only-you" }, "Only visible to you") : null),
    msg.broadcast ? el("div", { class: "broadcast" }, inThread ? "Also sent to the channel" : "replied to a thread") : null,
    msg.blocks && msg.blocks.length ? renderBlocks(msg.blocks, ctx) : el("div", { class: "mrkdwn", html: Mrkdwn.mrkdwn(msg.text, dir, false) }),
    msg.edited ? el("span", { class: "edited" }, "(edited)") : null);
  const reactions = el("div", { class: "reactions" });
  for (const [emoji, users] of Object.entries(msg.reactions || {})) {
    const mine = users.includes(state.me);
    reactions.append(el("button", {
      type: "button", class: mine ? "mine" : "", title: users.map((u) => (dir.users[u] || {}).name || u).join(", "),
      "aria-label": `${emoji} reaction, ${users.length}`,
      onclick: () => api("react", { channel, ts: msg.ts, emoji }),
    }, `${Mrkdwn.EMOJI[emoji] || ":" + emoji + ":"} ${users.length}`));
  }
  if (!msg.ephemeral) {
    // Which picker is open survives live re-renders of the log.
    const pickerKey = `${inThread ? "thread" : "log"}/${msg.ts}`;
    const picker = el("span", { class: "emoji-picker", hidden: state.picker !== pickerKey },
      QUICK_REACTIONS.map((name) => el("button", { type: "button", class: "msg-tool", "aria-label": `React with ${name}`, title: `:${name}:`, onclick: () => { state.picker = null; picker.hidden = true; api("react", { channel, ts: msg.ts, emoji: name }); } }, Mrkdwn.EMOJI[name])));
    const tools = el("div", { class: "msg-tools" },
      el("button", { type: "button", "aria-label": "Add reaction", "aria-expanded": String(!picker.hidden), onclick: (ev) => {
        picker.hidden = !picker.hidden;
        state.picker = picker.hidden ? null : pickerKey;
        ev.currentTarget.setAttribute("aria-expanded", String(!picker.hidden));
      } }, "☺ Add reaction"),
      picker,
      !inThread && msg.broadcast ? el("button", { type: "button", onclick: () => openThread(msg.thread_ts) }, "View thread") : null,
      !inThread && !msg.broadcast ? el("button", { type: "button", onclick: () => openThread(msg.ts) }, replies ? `${replies} ${replies === 1 ? "reply" : "replies"}` : "Reply in thread") : null);
    body.append(reactions, tools);
  }
  return el("article", { class: msg.ephemeral ? "msg ephemeral" : "msg", "data-ts": msg.ts, "aria-label": `Message from ${isBot ? "Flowbot" : who.real_name}` },
    el("div", { class: isBot ? "avatar bot" : "avatar", "aria-hidden": "true" }, (isBot ? "F" : who.name[0] || "?").toUpperCase()), body);
}

function renderChannel(screen, dir) {
  const channel = screen.channel;
  const log = $("log");
  const key = JSON.stringify(channel.messages);
  if (key === state.channelKey) return;
  state.channelKey = key;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  const replies = {};
  for (const m of channel.messages) if (m.thread_ts && m.thread_ts !== m.ts) replies[m.thread_ts] = (replies[m.thread_ts] || 0) + 1;
  // A reply sent with reply_broadcast is shown in the channel too, as Slack shows it.
  const top = channel.messages.filter((m) => !m.thread_ts || m.thread_ts === m.ts || m.broadcast);
  log.replaceChildren(...(top.length ? top.map((m) => messageNode(m, dir, channel.id, false, replies[m.ts] || 0))
    : [el("p", { class: "empty" }, "No messages yet.")]));
  if (atBottom) log.scrollTop = log.scrollHeight;
  if (state.thread) {
    const parent = channel.messages.find((m) => m.ts === state.thread);
    const items = channel.messages.filter((m) => m.ts === state.thread || m.thread_ts === state.thread);
    $("thread").hidden = !parent;
    $("thread-log").replaceChildren(...items.map((m) => messageNode(m, dir, channel.id, true, 0)));
  }
}

function openThread(ts) {
  state.thread = ts; state.channelKey = null;
  $("thread").hidden = false;
  refresh().then(() => $("thread-box").focus());
}

/* ---------------------------------------------------------------- App Home */

function openedHome() { api("home", {}); }

function renderHome(screen, dir) {
  const home = screen.home;
  const key = home ? `${home.id}:${home.hash}` : "none";
  if (key === state.homeKey) return;
  state.homeKey = key;
  const ctx = { dir, onAction: (blockId, actionId, raw) => api("action", { where: "home", block_id: blockId, action_id: actionId, value: raw }) };
  $("home").replaceChildren(home ? renderBlocks(home.blocks, ctx) : el("p", { class: "empty" }, "Loading the App Home…"));
}

/* ---------------------------------------------------------------- modals */

function renderModal(screen, dir, errors, formError) {
  const modal = screen.modal;
  const key = modal ? `${modal.id}:${modal.hash}` : null;
  const root = $("modal-root");
  const shown = root.querySelector(".backdrop:not(.confirm)");
  if (key === state.modalKey && errors === undefined && !!shown === !!modal) return;
  state.modalKey = key;
  root.querySelectorAll(".backdrop:not(.confirm)").forEach((n) => n.remove());
  if (!modal) return;
  const titleId = `modal-title-${modal.id}`;
  const form = el("form", { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": titleId, novalidate: false });
  const ctx = {
    dir, errors: errors || {},
    onAction: (blockId, actionId, raw) => api("action", { where: "modal", view_id: modal.id, block_id: blockId, action_id: actionId, value: raw, values: formValues(form) }),
  };
  const close = async () => { await api("close", { view_id: modal.id }); refresh(); };
  form.append(
    el("header", {}, el("h2", { id: titleId }, plainText(modal.title)),
      el("button", { type: "button", class: "bk", "aria-label": "Close", onclick: close }, "×")),
    el("div", { class: "modal-body" },
      formError ? el("p", { class: "form-error", role: "alert" }, formError) : null,
      renderBlocks(modal.blocks, ctx)),
    el("footer", {},
      el("button", { type: "button", class: "bk", onclick: close }, plainText(modal.close) || "Cancel"),
      modal.submit ? el("button", { type: "submit", class: "bk primary" }, plainText(modal.submit)) : null));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    if (submit) submit.disabled = true;
    const answer = await api("submit", { view_id: modal.id, values: formValues(form) });
    if (submit) submit.disabled = false;
    const latest = await fetchScreen();
    if (!answer.ok) {
      renderModal(latest, directory(latest), {}, answer.error);
    } else if (answer.errors && Object.keys(answer.errors).length) {
      showFieldErrors(form, answer.errors);
    } else if (answer.error) {
      renderModal(latest, directory(latest), {}, `Slack would show: ${answer.error}`);
    } else {
      apply(latest);
    }
  });
  root.append(el("div", { class: "backdrop" }, form));
  const first = form.querySelector(".modal-body input, .modal-body textarea, .modal-body select, .modal-body button");
  if (first) first.focus();
}

function showFieldErrors(form, errors) {
  for (const block of form.querySelectorAll(".input-block")) {
    const box = block.querySelector(".field-error");
    const message = errors[block.dataset.blockId];
    box.textContent = message || "";
    if (message) box.setAttribute("role", "alert"); else box.removeAttribute("role");
    const control = block.querySelector("[data-kind]");
    if (control) control.setAttribute("aria-invalid", message ? "true" : "false");
  }
}

/* ---------------------------------------------------------------- the screen */

async function fetchScreen() {
  const q = new URLSearchParams({ as: state.me });
  if (state.view !== "home") q.set("channel", state.view);
  const res = await fetch(`/sandbox/api/screen?${q}`);
  if (!res.ok) throw new Error(await res.text());
  return res.json();
}

function apply(screen) {
  state.screen = screen;
  const dir = directory(screen);
  renderSidebar(screen);
  const onHome = state.view === "home";
  $("home").hidden = !onHome;
  $("log").hidden = onHome;
  $("composer").hidden = onHome;
  if (onHome) {
    $("title").textContent = "Flowbot";
    $("subtitle").textContent = "App Home";
    $("thread").hidden = true;
    renderHome(screen, dir);
  } else {
    const ch = screen.channel;
    const named = dir.channels[ch.id];
    const isDm = ch.id.startsWith("D");
    $("title").textContent = isDm ? "flowbot" : `${named && named.private ? Mrkdwn.EMOJI.lock : "#"} ${named ? named.name : ch.id}`;
    $("subtitle").textContent = isDm ? "Direct messages with the app" : (named && named.topic) || "";
    $("subtitle").title = isDm ? "" : "Topic";
    $("box").setAttribute("aria-label", `Message ${isDm ? "flowbot" : "#" + (named ? named.name : ch.id)}`);
    $("box").placeholder = `Message ${isDm ? "flowbot" : "#" + (named ? named.name : ch.id)}`;
    renderChannel(screen, dir);
  }
  const me = dir.users[state.me];
  document.title = `${onHome ? "Home" : $("title").textContent} · ${me ? me.name : state.me} · Flowbot sandbox`;
  if (screen.bot_failed) showBanner(screen.bot_failed);
  renderModal(screen, dir);
}

let pending = null;
async function refresh() {
  if (pending) return pending;
  pending = (async () => {
    try { apply(await fetchScreen()); } catch (e) { showBanner(`The sandbox is unreachable: ${e.message}`); }
    finally { pending = null; }
  })();
  return pending;
}

let again = false;
async function refreshSoon() {
  if (pending) { again = true; await pending; if (!again) return; again = false; }
  await refresh();
}

function listen() {
  const source = new EventSource("/sandbox/events");
  source.onmessage = (ev) => { $("live").textContent = "live"; $("live").dataset.version = ev.data; refreshSoon(); };
  source.onerror = () => { $("live").textContent = "reconnecting…"; };
}

/* ---------------------------------------------------------------- composer and forms */

function sendFrom(box, threadTs) {
  return async (ev) => {
    ev.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    box.value = "";
    const answer = await api("send", { channel: state.view, text, thread_ts: threadTs ? threadTs() : undefined });
    if (!answer.ok) box.value = text;
    await refresh();
  };
}

function enterSends(box, form) {
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
}

function setup() {
  initialState();
  history.replaceState({}, "", href(state.me, state.view));
  $("composer").addEventListener("submit", sendFrom($("box")));
  $("thread-composer").addEventListener("submit", sendFrom($("thread-box"), () => state.thread));
  enterSends($("box"), $("composer"));
  enterSends($("thread-box"), $("thread-composer"));
  $("me").addEventListener("change", (ev) => go(ev.target.value, state.view, true));
  $("home-link").addEventListener("click", (ev) => { ev.preventDefault(); go(state.me, "home", true); });
  $("close-thread").addEventListener("click", () => { state.thread = null; $("thread").hidden = true; });
  $("webhook-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(ev.target);
    const answer = await api("webhook", { flow_id: data.get("flow_id"), token: data.get("token"), body: data.get("body") });
    $("webhook-result").textContent = answer.ok ? `HTTP ${answer.status}: ${answer.answer}` : answer.error;
  });
  if (state.view === "home") openedHome();
  listen();
  refresh();
}

setup();
})();
