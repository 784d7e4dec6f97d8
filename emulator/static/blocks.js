/* Block Kit to DOM. Interactive elements call ctx.onAction(blockId, actionId, raw, element);
   input blocks (modals) are form controls named by their block_id. */
(() => {
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "html") node.innerHTML = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function textHtml(obj, dir) {
  if (!obj) return "";
  if (typeof obj === "string") return Mrkdwn.mrkdwn(obj, dir, false);
  return Mrkdwn.mrkdwn(obj.text || "", dir, obj.type === "plain_text");
}

function plainText(obj) {
  return obj ? (typeof obj === "string" ? obj : obj.text || "") : "";
}

function textNode(obj, dir, tag) {
  return el(tag || "div", { class: "mrkdwn", html: textHtml(obj, dir) });
}

let uid = 0;
function nextId(prefix) { uid += 1; return `${prefix}-${uid}`; }

/* Options of a select: static ones, or people/channels of the sandbox for users/channels. */
function optionsOf(element, dir) {
  const kind = element.type || "";
  if (kind.includes("users_select")) {
    return dir.peopleList.map((p) => ({ value: p.id, label: `${p.real_name} (@${p.name})` }));
  }
  if (kind.includes("channels_select") || kind.includes("conversations_select")) {
    return dir.channelList.map((c) => ({ value: c.id, label: `#${c.name}` }));
  }
  const flat = [...(element.options || [])];
  for (const g of element.option_groups || []) flat.push(...(g.options || []));
  return flat.map((o) => ({ value: o.value, label: plainText(o.text), description: plainText(o.description) }));
}

function initialValues(element) {
  const kind = element.type || "";
  if (kind.includes("users_select")) return [].concat(element.initial_user || element.initial_users || []);
  if (kind.includes("channels_select")) return [].concat(element.initial_channel || element.initial_channels || []);
  if (kind.includes("conversations_select")) return [].concat(element.initial_conversation || element.initial_conversations || []);
  const opts = [].concat(element.initial_option || element.initial_options || []);
  return opts.map((o) => o.value);
}

function confirmThen(element, go) {
  const c = element.confirm;
  if (!c) return go();
  const root = document.getElementById("modal-root");
  const titleId = nextId("confirm-title");
  const close = () => backdrop.remove();
  const style = c.style === "danger" ? "bk danger" : "bk primary";
  const box = el("div", { class: "modal", role: "alertdialog", "aria-modal": "true", "aria-labelledby": titleId },
    el("header", {}, el("h2", { id: titleId }, plainText(c.title) || "Are you sure?")),
    el("div", { class: "modal-body" }, textNode(c.text, window.SandboxDir || {})),
    el("footer", {},
      el("button", { class: "bk", type: "button", onclick: close }, plainText(c.deny) || "Cancel"),
      el("button", { class: style, type: "button", onclick: () => { close(); go(); } }, plainText(c.confirm) || "Yes")));
  const backdrop = el("div", { class: "backdrop confirm" }, box);
  root.append(backdrop);
  box.querySelector("footer button:last-child").focus();
}

/* An interactive element. inForm: a modal input (named by blockId, not sent on change unless
   dispatch_action). */
function elementNode(element, blockId, ctx, opts) {
  const o = opts || {};
  const kind = element.type || "";
  const act = (raw) => ctx.onAction(blockId, element.action_id, raw, element);
  const name = o.inForm ? blockId : undefined;
  const labelled = o.labelId ? { "aria-labelledby": o.labelId } : {};
  const described = o.errorId ? { "aria-describedby": o.errorId } : {};
  if (kind === "button") {
    const style = element.style ? `bk ${element.style}` : "bk";
    return el("button", {
      class: style, type: "button", "data-action-id": element.action_id,
      onclick: (ev) => {
        if (element.url) window.open(element.url, "_blank", "noopener");
        const button = ev.currentTarget;
        confirmThen(element, () => { button.disabled = true; Promise.resolve(act(element.value)).finally(() => { button.disabled = false; }); });
      },
    }, plainText(element.text));
  }
  if (kind === "image") {
    return el("img", { src: element.image_url, alt: element.alt_text || "" });
  }
  if (kind === "overflow") {
    const select = el("select", { class: "bk", "aria-label": "More actions", onchange: (ev) => { const v = ev.target.value; ev.target.value = ""; if (v) confirmThen(element, () => act(v)); } },
      el("option", { value: "" }, "⋯"),
      optionsOf(element, ctx.dir).map((op) => el("option", { value: op.value }, op.label)));
    return select;
  }
  if (kind.endsWith("select")) {
    const multi = kind.startsWith("multi_");
    const chosen = initialValues(element);
    const placeholder = plainText(element.placeholder) || (multi ? "" : "Select an option");
    const select = el("select", {
      class: "bk", name, multiple: multi, required: o.required && !multi, ...labelled, ...described,
      "aria-label": o.labelId ? undefined : (placeholder || "Select"),
      onchange: (ev) => {
        const values = [...ev.target.selectedOptions].map((x) => x.value).filter(Boolean);
        if (!o.inForm || o.dispatch) act(multi ? values : values[0]);
      },
    },
    multi ? null : el("option", { value: "", disabled: o.inForm, selected: chosen.length === 0 }, placeholder),
    optionsOf(element, ctx.dir).map((op) => el("option", { value: op.value, selected: chosen.includes(op.value), title: op.description || undefined }, op.label)));
    return select;
  }
  if (kind === "checkboxes" || kind === "radio_buttons") {
    const chosen = initialValues(element);
    const group = el("div", { class: "choices", role: kind === "radio_buttons" ? "radiogroup" : "group", ...labelled, ...described });
    const inputName = name || nextId("choice");
    for (const op of optionsOf(element, ctx.dir)) {
      const input = el("input", {
        type: kind === "checkboxes" ? "checkbox" : "radio", name: inputName, value: op.value,
        checked: chosen.includes(op.value), required: o.required && kind === "radio_buttons",
        onchange: () => {
          if (o.inForm && !o.dispatch) return;
          const values = [...group.querySelectorAll("input:checked")].map((x) => x.value);
          act(kind === "checkboxes" ? values : values[0]);
        },
      });
      group.append(el("label", {}, input, " ", op.label, op.description ? el("small", {}, ` ${op.description}`) : null));
    }
    return group;
  }
  if (kind === "datepicker" || kind === "timepicker") {
    const initial = element.initial_date || element.initial_time || "";
    return el("input", {
      class: "bk", type: kind === "datepicker" ? "date" : "time", name, value: initial,
      required: o.required, ...labelled, ...described,
      "aria-label": o.labelId ? undefined : (plainText(element.placeholder) || "Pick a date"),
      onchange: (ev) => { if (!o.inForm || o.dispatch) act(ev.target.value); },
    });
  }
  if (kind === "plain_text_input" || kind === "number_input" || kind === "email_text_input" || kind === "url_text_input") {
    const common = {
      class: "bk", name, required: o.required, placeholder: plainText(element.placeholder) || undefined,
      ...labelled, ...described,
    };
    if (kind === "plain_text_input" && element.multiline) {
      const area = el("textarea", { ...common, rows: 10, minlength: element.min_length, maxlength: element.max_length });
      area.value = element.initial_value || "";
      return area;
    }
    const type = { number_input: "number", email_text_input: "email", url_text_input: "url" }[kind] || "text";
    const input = el("input", {
      ...common, type, value: element.initial_value || "",
      minlength: kind === "plain_text_input" ? element.min_length : undefined,
      maxlength: kind === "plain_text_input" ? element.max_length : undefined,
      min: element.min_value, max: element.max_value,
      step: kind === "number_input" ? (element.is_decimal_allowed ? "any" : "1") : undefined,
    });
    if (o.dispatch) input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); act(input.value); } });
    return input;
  }
  return el("span", { class: "empty" }, `[${kind}]`);
}

function blockNode(block, ctx) {
  const dir = ctx.dir;
  const kind = block.type;
  const bid = block.block_id;
  if (kind === "section") {
    const body = el("div", { class: "section-body" });
    if (block.text) body.append(textNode(block.text, dir));
    if (block.fields) body.append(el("div", { class: "fields" }, block.fields.map((f) => textNode(f, dir))));
    const node = el("div", { class: "block section" }, body);
    if (block.accessory) node.append(elementNode(block.accessory, bid, ctx));
    return node;
  }
  if (kind === "header") return el("h3", { class: "block header" }, el("span", { html: textHtml(block.text, dir) }));
  if (kind === "divider") return el("hr", { class: "block" });
  if (kind === "context") {
    return el("div", { class: "block context" }, (block.elements || []).map((e) => (e.type === "image"
      ? el("img", { src: e.image_url, alt: e.alt_text || "" }) : textNode(e, dir, "span"))));
  }
  if (kind === "image") {
    return el("figure", { class: "block image" },
      block.title ? el("figcaption", { html: textHtml(block.title, dir) }) : null,
      el("img", { src: block.image_url, alt: block.alt_text || "" }));
  }
  if (kind === "actions") {
    return el("div", { class: "block actions", role: "group" }, (block.elements || []).map((e) => elementNode(e, bid, ctx)));
  }
  if (kind === "input") {
    const labelId = nextId("label");
    const errorId = nextId("error");
    const element = block.element || {};
    const error = (ctx.errors || {})[bid];
    const control = elementNode(element, bid, ctx, {
      inForm: true, required: !block.optional, dispatch: !!block.dispatch_action, labelId, errorId,
    });
    control.dataset.blockId = bid;
    control.dataset.kind = element.type;
    const labelTag = control.matches("input, select, textarea") ? "label" : "span";
    const controlId = control.id || nextId("control");
    if (labelTag === "label") control.id = controlId;
    return el("div", { class: "input-block", "data-block-id": bid },
      el(labelTag, { id: labelId, class: "label", for: labelTag === "label" ? controlId : undefined },
        plainText(block.label), block.optional ? el("span", { class: "optional" }, " (optional)") : null),
      control,
      block.hint ? el("div", { class: "bk-hint", html: textHtml(block.hint, dir) }) : null,
      el("div", { class: "field-error", id: errorId, role: error ? "alert" : undefined }, error || ""));
  }
  if (kind === "rich_text") {
    const texts = [];
    const walk = (x) => { if (Array.isArray(x)) x.forEach(walk); else if (x && typeof x === "object") { if (typeof x.text === "string") texts.push(x.text); walk(x.elements); } };
    walk(block.elements);
    return el("div", { class: "block mrkdwn" }, texts.join(""));
  }
  return el("div", { class: "block empty" }, `[${kind} block]`);
}

function renderBlocks(blocks, ctx) {
  return el("div", { class: "blocks" }, (blocks || []).map((b) => blockNode(b, ctx)));
}

/* What the person entered in a modal's input blocks: {block_id: value or [values]}. */
function formValues(form) {
  const values = {};
  for (const control of form.querySelectorAll("[data-block-id][data-kind]")) {
    const bid = control.dataset.blockId, kind = control.dataset.kind;
    if (kind === "checkboxes" || kind.startsWith("multi_")) {
      values[bid] = kind === "checkboxes"
        ? [...control.querySelectorAll("input:checked")].map((x) => x.value)
        : [...control.selectedOptions].map((x) => x.value).filter(Boolean);
    } else if (kind === "radio_buttons") {
      const chosen = control.querySelector("input:checked");
      if (chosen) values[bid] = chosen.value;
    } else if (kind === "plain_text_input" || kind === "email_text_input" || kind === "url_text_input") {
      values[bid] = control.value;
    } else if (control.value) {
      values[bid] = control.value;
    }
  }
  return values;
}

window.Blocks = { el, renderBlocks, formValues, textHtml, plainText };
})();
