/* The demo chat page: a Telegram-like client of the local Bot API emulator.
 *
 * The server pushes every change over server-sent events (the first event is a full snapshot,
 * so a reconnect resynchronises); the page only sends what a person does: a text, a button
 * press, a payment. Everything is built with DOM nodes, never innerHTML, because message text
 * comes from the bot and must not be able to inject markup.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  // Dark enough for white initials (and for a sender's name on a white bubble): ≥ 4.8:1.
  const PALETTE = ["#c0392b", "#2e7d32", "#1f6fb2", "#6a4fc9", "#b8336a", "#b35900"];
  const BOT_COLOR = "#00796b";
  // A countdown (or elapsed time) that is the only change in a message ticks on screen at most
  // this often: every redraw would otherwise replace what is under a finger about to tap.
  const TICK_MS = 10000;
  const TIME_TOKEN = /\d+(?::\d{2})+/g;

  // The page's own words. Its language is ?lang=ru|en when given, else the language of the
  // person whose chats are shown: Boris sees a Russian page, as he would in his Telegram.
  const WORDS = {
    en: {
      copied: "Copied",
      copyThis: "Copy this: {text}",
      edited: "edited",
      message: "Message",
      messageGroup: "Message the group",
      menu: "Menu",
      send: "Send",
      asPerson: "as {name}",
      switchPerson: "Switch demo person",
      back: "Chats and people",
      tryAs: "Try it as",
      bot: "bot",
      members: "{count} members",
      youAdmin: " · you are an admin",
      pressStart: "Press START",
      start: "START",
      intro: "{bot} sells virtual US numbers for SMS codes. This is a demo with play money.",
      noMessages: "No messages here yet. Try /buy or /help.",
      invoice: "Invoice: {title}",
      paid: "Paid ✓",
      pay: "Pay",
      payStars: "Pay ⭐ {amount}",
      paymentSent: "Payment sent ✓",
      paymentFailed: "The payment did not go through.",
      noAnswer: "The bot did not answer.",
      notSent: "Not sent.",
      otherButton: "This kind of button is not part of the demo.",
      unreachable: "The demo server is not reachable.",
      connecting: "Connecting…",
      stopped: "The demo server stopped.",
      spoiler: "Spoiler: tap to reveal",
      tapToCopy: "Tap to copy",
      sendCommand: "Send this command",
      ok: "OK",
      added: "{who} added {bot} to the group",
      paidService: "{who} paid {price}",
      someone: "Someone",
      peopleAndChats: "Demo people and chats",
      chats: "Chats",
      demoPerson: "Demo person",
      commands: "Bot commands",
      messages: "Messages",
    },
    ru: {
      copied: "Скопировано",
      copyThis: "Скопируйте: {text}",
      edited: "изменено",
      message: "Сообщение",
      messageGroup: "Сообщение в группу",
      menu: "Меню",
      send: "Отправить",
      asPerson: "вы — {name}",
      switchPerson: "Сменить участника демо",
      back: "Чаты и люди",
      tryAs: "Попробуйте как",
      bot: "бот",
      members: "участников: {count}",
      youAdmin: " · вы админ",
      pressStart: "Нажмите «Запустить»",
      start: "ЗАПУСТИТЬ",
      intro: "{bot} продаёт виртуальные номера США для SMS-кодов. Это демо с игровыми деньгами.",
      noMessages: "Здесь пока нет сообщений. Попробуйте /buy или /help.",
      invoice: "Счёт: {title}",
      paid: "Оплачено ✓",
      pay: "Оплатить",
      payStars: "Оплатить ⭐ {amount}",
      paymentSent: "Платёж отправлен ✓",
      paymentFailed: "Платёж не прошёл.",
      noAnswer: "Бот не ответил.",
      notSent: "Не отправлено.",
      otherButton: "Такие кнопки в демо не работают.",
      unreachable: "Сервер демо недоступен.",
      connecting: "Подключение…",
      stopped: "Сервер демо остановлен.",
      spoiler: "Спойлер: нажмите, чтобы открыть",
      tapToCopy: "Нажмите, чтобы скопировать",
      sendCommand: "Отправить эту команду",
      ok: "ОК",
      added: "{who} добавляет {bot} в группу",
      paidService: "{who} оплачивает {price}",
      someone: "Кто-то",
      peopleAndChats: "Участники демо и чаты",
      chats: "Чаты",
      demoPerson: "Участник демо",
      commands: "Команды бота",
      messages: "Сообщения",
    },
  };
  const FORCED_LANG = (() => {
    const wanted = new URLSearchParams(location.search).get("lang");
    return wanted && WORDS[wanted] ? wanted : null;
  })();

  const S = {
    bot: { id: 0, name: "Bot", username: "" },
    people: [],
    chats: new Map(), // chat id -> {id, type, title, members: [{user_id, status}], messages: Map}
    info: {},
    me: null, // person id
    chatId: null,
    unread: new Map(), // `${person}:${chat}` -> count
    commands: [],
    commandsFor: "",
    cmdActive: -1,
    connected: false,
    lang: FORCED_LANG || "en",
  };

  function tr(key, args) {
    const text = (WORDS[S.lang] || WORDS.en)[key] || WORDS.en[key] || key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (args && name in args ? String(args[name]) : ""));
  }

  function languageOf(personId) {
    if (FORCED_LANG) return FORCED_LANG;
    const p = person(personId);
    const code = String((p && p.language) || "en").split("-")[0];
    return WORDS[code] ? code : "en";
  }

  // ---------------------------------------------------------------- helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // Each demo person, the bot and each group: its own colour (by position, so no two people
  // share one) and its own initials (two letters where two names start alike: Alice and Admin).
  function colorFor(id) {
    if (Number(id) === S.bot.id) return BOT_COLOR;
    const people = S.people.findIndex((p) => p.id === Number(id));
    if (people >= 0) return PALETTE[people % PALETTE.length];
    const groups = Array.from(S.chats.values()).filter((c) => c.type !== "private");
    const group = groups.findIndex((c) => c.id === Number(id));
    if (group >= 0) return PALETTE[(S.people.length + group) % PALETTE.length];
    return PALETTE[Math.abs(Number(id)) % PALETTE.length];
  }

  function initials(name) {
    const parts = String(name || "?").trim().split(/\s+/).filter(Boolean);
    return parts.slice(0, 2).map((p) => Array.from(p)[0].toUpperCase()).join("") || "?";
  }

  function avatarText(id, name) {
    const mine = initials(name);
    const clash = S.people.some((p) => p.id !== Number(id) && initials(p.name) === mine);
    if (!clash || mine.length > 1) return mine;
    const letters = Array.from(String(name).trim());
    return letters[0].toUpperCase() + (letters[1] || "").toLowerCase();
  }

  function avatar(id, name, cls) {
    const node = el("div", { class: cls ? `avatar ${cls}` : "avatar", "aria-hidden": "true" }, avatarText(id, name));
    node.style.setProperty("--avatar", colorFor(id));
    return node;
  }

  // The chat's avatar: a private chat is the bot's, a group its own.
  function chatAvatarId(chat) {
    return chat.type === "private" ? S.bot.id : chat.id;
  }

  function clock(unix) {
    if (!unix) return "";
    const d = new Date(unix * 1000);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }

  function safeUrl(url) {
    const text = String(url || "").trim();
    if (/^(https?:|tg:|mailto:)/i.test(text)) return text;
    if (/^[\w-]+(\.[\w-]+)+/.test(text)) return `https://${text}`;
    return null;
  }

  function person(id) {
    return S.people.find((p) => p.id === id) || null;
  }

  function currentChat() {
    return S.chats.get(S.chatId) || null;
  }

  async function api(path, body) {
    const init = body === undefined
      ? { headers: { Accept: "application/json" } }
      : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { ok: false, error: tr("unreachable") };
    }
    try {
      return await response.json();
    } catch (err) {
      return { ok: false, error: `HTTP ${response.status}` };
    }
  }

  // ---------------------------------------------------------------- toast, alert, clipboard

  let toastTimer = 0;
  function toast(text, ms) {
    const node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.hidden = true; }, ms || 2200);
  }

  function alertBox(text) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
    $("alert-ok").focus();
  }

  async function copyText(text) {
    let done = false;
    try {
      await navigator.clipboard.writeText(text);
      done = true;
    } catch (err) {
      // Clipboard API refused (no permission, not focused): the old way still works in most browsers.
      const area = el("textarea", { readonly: true });
      area.style.position = "fixed";
      area.style.opacity = "0";
      area.style.top = "0";
      area.value = text;
      document.body.append(area);
      area.select();
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
      area.remove();
    }
    window.__lastCopied = text;
    toast(done ? tr("copied") : tr("copyThis", { text }));
  }

  // ---------------------------------------------------------------- message text with entities

  function entityNode(entity, slice) {
    switch (entity.type) {
      case "bold": return el("b");
      case "italic": return el("i");
      case "underline": return el("u");
      case "strikethrough": return el("s");
      case "spoiler": {
        const node = el("span", { class: "spoiler", title: tr("spoiler") });
        node.addEventListener("click", () => node.classList.add("revealed"));
        return node;
      }
      case "code": {
        const node = el("code", { class: "inline", title: tr("tapToCopy") });
        node.addEventListener("click", () => copyText(node.textContent));
        return node;
      }
      case "pre": {
        const code = el("code", entity.language ? { class: `language-${entity.language}` } : {});
        const pre = el("pre", {}, code);
        return { outer: pre, inner: code };
      }
      case "text_link": {
        const href = safeUrl(entity.url);
        return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span", { class: "link" });
      }
      case "url": {
        const href = safeUrl(slice);
        return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span");
      }
      case "email": return el("a", { href: `mailto:${slice}` });
      case "bot_command": {
        const node = el("a", { class: "cmd", href: "#", title: tr("sendCommand") });
        node.addEventListener("click", (ev) => { ev.preventDefault(); sendText(slice); });
        return node;
      }
      case "mention": case "hashtag": case "cashtag": case "text_mention": case "phone_number":
        return el("span", { class: "link" });
      case "blockquote": case "expandable_blockquote": return el("blockquote");
      default: return el("span");
    }
  }

  // Entities nest (Telegram splits overlapping ones); offsets and lengths are UTF-16 code units,
  // which is exactly how JavaScript indexes strings.
  function buildText(parent, text, start, end, entities) {
    let pos = start;
    let i = 0;
    while (i < entities.length) {
      const entity = entities[i];
      const eStart = Math.max(entity.offset, start);
      const eEnd = Math.min(entity.offset + entity.length, end);
      if (eStart >= end) break;
      if (eStart < pos || eEnd <= eStart) { i += 1; continue; }
      if (eStart > pos) parent.append(text.slice(pos, eStart));
      let j = i + 1;
      const inner = [];
      while (j < entities.length && entities[j].offset < eEnd) { inner.push(entities[j]); j += 1; }
      const made = entityNode(entity, text.slice(eStart, eEnd));
      const outer = made instanceof Node ? made : made.outer;
      const target = made instanceof Node ? made : made.inner;
      buildText(target, text, eStart, eEnd, inner);
      parent.append(outer);
      pos = eEnd;
      i = j;
    }
    if (pos < end) parent.append(text.slice(pos, end));
  }

  function renderText(text, entities) {
    const node = el("div", { class: "text" });
    const sorted = (entities || [])
      .filter((e) => e && e.length > 0)
      .slice()
      .sort((a, b) => a.offset - b.offset || b.length - a.length);
    buildText(node, text || "", 0, (text || "").length, sorted);
    return node;
  }

  // ---------------------------------------------------------------- messages

  function keyboardFor(msg) {
    if (!msg.buttons || !msg.buttons.length) return null;
    const board = el("div", { class: "keyboard" });
    msg.buttons.forEach((row) => {
      const line = el("div", { class: "kb-row" });
      row.forEach((button) => line.append(buttonNode(msg, button)));
      board.append(line);
    });
    return board;
  }

  const CORNER_ICONS = {
    url: ["M9 5h10v10", "M19 5 6 18"],
    copy: ["M9 9h10v10H9z", "M5 15V5h10"],
  };

  function icon(paths, cls) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    if (cls) svg.setAttribute("class", cls);
    paths.forEach((d) => {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    });
    return svg;
  }

  // What a button does; a redraw keeps the button element whose key is unchanged.
  function buttonKey(button) {
    return [button.kind, button.callback_data || button.url || button.copy_text || ""].join("|");
  }

  function setButton(node, msg, button) {
    // The click reads these at click time, so a kept button acts on the message as it is now.
    node.__msg = msg;
    node.__button = button;
    if (node.__label === button.text) return;
    const corner = CORNER_ICONS[button.kind];
    node.replaceChildren(el("span", { class: "label" }, button.text), corner ? icon(corner, "corner") : "");
    node.title = button.text;
    node.__label = button.text;
  }

  function buttonNode(msg, button) {
    const node = el(
      "button",
      { type: "button", class: button.kind === "pay" ? "kb-btn pay" : "kb-btn", dataset: { kind: button.kind, key: buttonKey(button) } },
    );
    setButton(node, msg, button);
    node.addEventListener("click", () => onButton(node.__msg, node.__button, node));
    return node;
  }

  async function onButton(msg, button, node) {
    if (button.kind === "url") {
      const href = safeUrl(button.url);
      if (href) window.open(href, "_blank", "noopener");
      return;
    }
    if (button.kind === "copy") {
      await copyText(button.copy_text);
      return;
    }
    if (button.kind === "pay") {
      await pay(msg, node);
      return;
    }
    if (button.kind !== "callback") {
      toast(tr("otherButton"));
      return;
    }
    if (node.classList.contains("pending")) return;
    node.classList.add("pending");
    const result = await api("/api/press", {
      user_id: S.me, chat_id: msg.chat_id, message_id: msg.message_id, callback_data: button.callback_data,
    });
    node.classList.remove("pending");
    if (!result.ok) { toast(result.error || tr("noAnswer")); return; }
    const answer = result.answer || {};
    if (answer.url) { const href = safeUrl(answer.url); if (href) window.open(href, "_blank", "noopener"); }
    if (answer.text) { if (answer.show_alert) alertBox(answer.text); else toast(answer.text); }
  }

  async function pay(msg, node) {
    if (node) node.classList.add("pending");
    const result = await api("/api/pay", { user_id: S.me, chat_id: msg.chat_id, message_id: msg.message_id });
    if (node) node.classList.remove("pending");
    if (!result.ok) { alertBox(result.error || tr("paymentFailed")); return; }
    toast(tr("paymentSent"));
  }

  function invoiceNode(msg) {
    const inv = msg.invoice;
    const stars = inv.currency === "XTR";
    const amount = stars ? `⭐ ${inv.total_amount}` : `${(inv.total_amount / 100).toFixed(2)} ${inv.currency}`;
    const box = el(
      "div", { class: "invoice" },
      el("div", { class: "title" }, inv.title),
      inv.description ? el("div", { class: "text" }, inv.description) : null,
      el("div", { class: "price" }, amount),
    );
    if (msg.paid) box.append(el("div", { class: "paid" }, tr("paid")));
    return box;
  }

  function documentNode(msg) {
    const doc = msg.document;
    const size = doc.size < 1024 ? `${doc.size} B` : `${(doc.size / 1024).toFixed(1)} KB`;
    return el(
      "a",
      { class: "document", href: `/api/file/${msg.chat_id}/${msg.message_id}`, download: doc.file_name },
      el("span", { class: "icon" }, "⤓"),
      el("span", {}, el("div", { class: "name" }, doc.file_name), el("div", { class: "size" }, size)),
    );
  }

  function serviceText(msg) {
    const data = msg.service_data || {};
    const who = data.who || tr("someone");
    if (msg.service === "new_chat_members") return tr("added", { who, bot: data.bot || S.bot.name });
    if (msg.service === "successful_payment" && data.amount !== undefined) {
      const price = data.currency === "XTR" ? `⭐ ${data.amount}` : `${data.amount} ${data.currency}`;
      return tr("paidService", { who, price });
    }
    return msg.text;
  }

  function messageNode(msg) {
    if (msg.service) {
      // Telegram shows service messages (someone joined, a payment) as a small centred note.
      const node = el(
        "div",
        { class: "msg service", dataset: { chatId: msg.chat_id, messageId: msg.message_id, edited: msg.edited || 0 } },
        el("span", {}, serviceText(msg)),
      );
      node.__shown = msg;
      return node;
    }
    const chat = S.chats.get(msg.chat_id);
    const out = !msg.from.is_bot && msg.from.id === S.me;
    const group = chat && chat.type !== "private";
    const bubble = el("div", { class: "bubble" });
    if (group && !out) {
      const sender = el("div", { class: "sender" }, msg.from.name);
      sender.style.setProperty("--sender", colorFor(msg.from.id));
      bubble.append(sender);
    }
    if (msg.invoice) bubble.append(invoiceNode(msg));
    if (msg.document) bubble.append(documentNode(msg));
    if (msg.text) {
      const text = renderText(msg.text, msg.entities);
      text.append(el("span", { class: "meta" }, msg.edited ? `${tr("edited")} ` : "", clock(msg.date)));
      bubble.append(text);
    } else {
      bubble.append(el("div", { class: "meta" }, msg.edited ? `${tr("edited")} ` : "", clock(msg.date)));
    }
    // A paid invoice keeps its other buttons but loses its pay button, as in Telegram.
    const buttons = (msg.buttons || [])
      .map((row) => row.filter((b) => !(msg.paid && b.kind === "pay")))
      .filter((row) => row.length);
    if (msg.invoice && !msg.paid && !buttons.some((row) => row.some((b) => b.kind === "pay"))) {
      const stars = msg.invoice.currency === "XTR";
      buttons.unshift([{ kind: "pay", text: stars ? tr("payStars", { amount: msg.invoice.total_amount }) : tr("pay") }]);
    }
    const node = el(
      "div",
      {
        class: out ? "msg out" : "msg in",
        dataset: { chatId: msg.chat_id, messageId: msg.message_id, edited: msg.edited || 0 },
      },
      bubble,
      keyboardFor({ ...msg, buttons }),
    );
    node.__shown = msg;
    node.__drawnAt = Date.now();
    return node;
  }

  // ---------------------------------------------------------------- edits without flicker

  // What the bubble shows (the buttons aside); equal parts need no redraw.
  function bubbleKey(msg, anyEdit) {
    return JSON.stringify([
      msg.text, msg.entities, msg.invoice, msg.document, msg.paid, anyEdit || Boolean(msg.edited),
      msg.service, msg.service_data, msg.from && msg.from.id, msg.date,
    ]);
  }

  function buttonsKey(msg) {
    return JSON.stringify([msg.buttons, msg.paid]);
  }

  function masked(key) {
    return key.replace(TIME_TOKEN, "⏱");
  }

  // A redraw of the same message that only moved a clock ("Cancel in 0:07", "⏱ 1:02"); its
  // first redraw also makes it "edited", which is no news either.
  function onlyTimeChanged(shown, msg) {
    return masked(bubbleKey(shown, true)) === masked(bubbleKey(msg, true))
      && masked(buttonsKey(shown)) === masked(buttonsKey(msg));
  }

  // Brings a drawn message up to `msg` in place: the bubble is rebuilt only if what it shows
  // changed, and every button whose action is unchanged stays the same element (its label
  // updated), so a tap that lands during a redraw still hits the button it aimed at.
  function patchMessage(node, msg, flash) {
    const shown = node.__shown;
    const fresh = messageNode(msg);
    const freshBubble = fresh.querySelector(":scope > .bubble, :scope > span");
    const oldBubble = node.querySelector(":scope > .bubble, :scope > span");
    const keepBubble = shown && oldBubble && bubbleKey(shown) === bubbleKey(msg);
    const pool = new Map();
    node.querySelectorAll(".kb-btn").forEach((b) => {
      const list = pool.get(b.dataset.key) || [];
      list.push(b);
      pool.set(b.dataset.key, list);
    });
    fresh.querySelectorAll(".kb-btn").forEach((b) => {
      const kept = (pool.get(b.dataset.key) || []).shift();
      if (!kept) return;
      setButton(kept, b.__msg, b.__button);
      b.replaceWith(kept);
    });
    if (keepBubble && freshBubble) freshBubble.replaceWith(oldBubble);
    node.className = fresh.className;
    Object.assign(node.dataset, fresh.dataset);
    node.replaceChildren(...fresh.childNodes);
    node.__shown = msg;
    node.__drawnAt = Date.now();
    if (flash && !keepBubble) {
      node.classList.remove("flash");
      void node.offsetWidth; // restart the animation on a node that is kept
      node.classList.add("flash");
    }
  }

  function updateMessage(node, msg, flash) {
    const shown = node.__shown;
    node.dataset.edited = String(msg.edited || 0); // every edit counts, drawn or not yet
    if (shown && bubbleKey(shown) === bubbleKey(msg) && buttonsKey(shown) === buttonsKey(msg)) return;
    if (shown && onlyTimeChanged(shown, msg)) {
      node.__pending = msg;
      if (!node.__tick) {
        const wait = Math.max(0, (node.__drawnAt || 0) + TICK_MS - Date.now());
        node.__tick = setTimeout(() => {
          node.__tick = 0;
          const latest = node.__pending;
          node.__pending = null;
          if (latest && node.isConnected) patchMessage(node, latest, false);
        }, wait);
      }
      return;
    }
    clearTimeout(node.__tick);
    node.__tick = 0;
    node.__pending = null;
    patchMessage(node, msg, flash);
  }

  function sortedMessages(chat) {
    return Array.from(chat.messages.values()).sort((a, b) => a.message_id - b.message_id);
  }

  function nearBottom() {
    const box = $("messages");
    return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  }

  function scrollToBottom() {
    const box = $("messages");
    box.scrollTop = box.scrollHeight;
  }

  function renderMessages() {
    const box = $("messages");
    const chat = currentChat();
    box.replaceChildren();
    if (!chat) return;
    const list = sortedMessages(chat).filter((m) => !m.deleted);
    if (!list.length) {
      box.append(emptyChat(chat));
      return;
    }
    list.forEach((m) => box.append(messageNode(m)));
    scrollToBottom();
  }

  function emptyChat(chat) {
    if (chat.type === "private") {
      return el(
        "div", { class: "empty" },
        el("p", {}, tr("intro", { bot: S.bot.name })),
        el("button", { type: "button", class: "kb-btn pay", onclick: () => sendText("/start") }, tr("start")),
      );
    }
    return el("div", { class: "empty" }, tr("noMessages"));
  }

  function applyMessage(msg, flash) {
    const chat = S.chats.get(msg.chat_id);
    if (!chat) return;
    const old = chat.messages.get(msg.message_id);
    if (old && (old.edited || 0) > (msg.edited || 0) && !msg.deleted) return; // a late, older copy
    chat.messages.set(msg.message_id, msg);
    if (!old && !msg.deleted) countUnread(chat, msg);
    if (S.chatId !== chat.id) { renderChatList(); return; }
    const box = $("messages");
    const stick = nearBottom();
    const existing = box.querySelector(`.msg[data-message-id="${msg.message_id}"]`);
    if (msg.deleted) {
      if (existing) existing.remove();
      if (!box.querySelector(".msg")) renderMessages();
      renderChatList();
      return;
    }
    if (existing) {
      updateMessage(existing, msg, flash);
    } else {
      const node = messageNode(msg);
      const empty = box.querySelector(".empty");
      if (empty) empty.remove();
      const after = Array.from(box.querySelectorAll(".msg")).find((n) => Number(n.dataset.messageId) > msg.message_id);
      if (after) box.insertBefore(node, after); else box.append(node);
      if (stick || (!msg.from.is_bot && msg.from.id === S.me)) scrollToBottom();
    }
    renderChatList();
  }

  function countUnread(chat, msg) {
    for (const p of S.people) {
      if (!canSee(p.id, chat)) continue;
      if (!msg.from.is_bot && msg.from.id === p.id) continue;
      if (p.id === S.me && chat.id === S.chatId && document.visibilityState !== "hidden") continue;
      const key = `${p.id}:${chat.id}`;
      S.unread.set(key, (S.unread.get(key) || 0) + 1);
    }
  }

  // ---------------------------------------------------------------- people and chats

  function canSee(personId, chat) {
    if (chat.type === "private") return chat.id === personId;
    return chat.members.some((m) => m.user_id === personId && m.status !== "left" && m.status !== "kicked");
  }

  function chatsOf(personId) {
    return Array.from(S.chats.values()).filter((c) => canSee(personId, c));
  }

  function chatTitle(chat) {
    return chat.type === "private" ? S.bot.name : chat.title;
  }

  function chatSubtitle(chat) {
    if (chat.type === "private") return tr("bot");
    const me = chat.members.find((m) => m.user_id === S.me);
    const role = me && (me.status === "creator" || me.status === "administrator") ? tr("youAdmin") : "";
    return `${tr("members", { count: chat.members.length + 1 })}${role}`;
  }

  function preview(chat) {
    const list = sortedMessages(chat).filter((m) => !m.deleted);
    const last = list[list.length - 1];
    if (!last) return { text: chat.type === "private" ? tr("pressStart") : "", time: "" };
    let text = last.service ? serviceText(last) : last.text
      || (last.invoice ? tr("invoice", { title: last.invoice.title }) : last.document ? last.document.file_name : "");
    if (chat.type !== "private" && !last.service) text = `${last.from.is_bot ? S.bot.name : last.from.name}: ${text}`;
    return { text: text.split("\n")[0], time: clock(last.date) };
  }

  function renderPeople() {
    const box = $("people");
    box.replaceChildren();
    S.people.forEach((p) => {
      const node = el(
        "button",
        { type: "button", class: "person", role: "radio", "aria-checked": String(p.id === S.me), dataset: { personId: p.id } },
        avatar(p.id, p.name),
        el("span", { class: "who" }, el("span", {}, p.name), el("small", {}, (p.labels && p.labels[S.lang]) || p.label)),
      );
      node.addEventListener("click", () => selectPerson(p.id));
      box.append(node);
    });
    const me = person(S.me);
    $("me-chip-text").textContent = me ? tr("asPerson", { name: me.name }) : "";
  }

  function renderChatList() {
    const nav = $("chat-list");
    nav.replaceChildren();
    let others = 0;
    chatsOf(S.me).forEach((chat) => {
      const p = preview(chat);
      const unread = S.unread.get(`${S.me}:${chat.id}`) || 0;
      if (chat.id !== S.chatId) others += unread;
      const node = el(
        "button",
        { type: "button", class: "chat-item", "aria-current": String(chat.id === S.chatId), dataset: { chatId: chat.id } },
        avatar(chatAvatarId(chat), chatTitle(chat)),
        el(
          "span", { class: "body" },
          el("span", { class: "top" }, el("span", {}, chatTitle(chat)), el("span", { class: "time" }, p.time)),
          el(
            "span", { class: "bottom" },
            el("span", { class: "preview" }, p.text),
            unread && chat.id !== S.chatId ? el("span", { class: "unread" }, unread) : null,
          ),
        ),
      );
      node.addEventListener("click", () => selectChat(chat.id));
      nav.append(node);
    });
    const badge = $("back-unread");
    badge.hidden = others === 0;
    badge.textContent = String(others);
  }

  function renderHeader() {
    const chat = currentChat();
    const head = $("chat-avatar");
    if (!chat) return;
    head.textContent = avatarText(chatAvatarId(chat), chatTitle(chat));
    head.style.setProperty("--avatar", colorFor(chatAvatarId(chat)));
    $("chat-name").textContent = chatTitle(chat);
    $("chat-sub").textContent = chatSubtitle(chat);
  }

  function selectPerson(id) {
    if (!person(id)) return;
    const wasGroup = currentChat() && currentChat().type !== "private" ? S.chatId : null;
    S.me = id;
    applyLanguage();
    const keep = wasGroup !== null && canSee(id, S.chats.get(wasGroup));
    renderPeople();
    selectChat(keep ? wasGroup : id);
  }

  function selectChat(chatId) {
    if (!S.chats.has(chatId)) return;
    S.chatId = chatId;
    S.unread.delete(`${S.me}:${chatId}`);
    $("app").classList.remove("show-list");
    history.replaceState(null, "", `#as=${S.me}&chat=${chatId}`);
    hideCommands();
    renderHeader();
    renderChatList();
    renderMessages();
    loadCommands();
    $("input").placeholder = currentChat().type === "private" ? tr("message") : tr("messageGroup");
  }

  // The page's own labels in the language of the person shown (or ?lang=).
  function applyLanguage() {
    S.lang = languageOf(S.me);
    document.documentElement.lang = S.lang;
    $("menu-label").textContent = tr("menu");
    $("send").setAttribute("aria-label", tr("send"));
    $("send").title = tr("send");
    $("input").setAttribute("aria-label", tr("message"));
    $("back").setAttribute("aria-label", tr("back"));
    $("me-chip").title = tr("switchPerson");
    $("try-as").textContent = tr("tryAs");
    $("alert-ok").textContent = tr("ok");
    $("sidebar").setAttribute("aria-label", tr("peopleAndChats"));
    $("chat-list").setAttribute("aria-label", tr("chats"));
    $("people").setAttribute("aria-label", tr("demoPerson"));
    $("commands").setAttribute("aria-label", tr("commands"));
    $("messages").setAttribute("aria-label", tr("messages"));
    $("demo-info").textContent = (S.lang === "ru" && S.info.text_ru) || S.info.text || "";
    if (!S.connected && !$("conn").hidden) $("conn").textContent = tr("connecting");
  }

  // ---------------------------------------------------------------- commands menu and sending

  async function loadCommands() {
    const key = `${S.me}:${S.chatId}`;
    const result = await api(`/api/commands?user_id=${S.me}&chat_id=${S.chatId}`);
    if (`${S.me}:${S.chatId}` !== key) return; // the person switched while this was in flight
    S.commands = result.ok ? result.commands : [];
    S.commandsFor = key;
    $("menu-btn").hidden = S.commands.length === 0;
  }

  function showCommands(filter) {
    const box = $("commands");
    const prefix = (filter || "").slice(1).toLowerCase();
    const list = S.commands.filter((c) => c.command.toLowerCase().startsWith(prefix));
    box.replaceChildren();
    if (!list.length) { hideCommands(); return; }
    list.forEach((c, index) => {
      const node = el(
        "button",
        { type: "button", class: index === S.cmdActive ? "command active" : "command", role: "option", dataset: { command: c.command } },
        el("span", { class: "name" }, `/${c.command}`),
        el("span", { class: "desc" }, c.description),
      );
      node.addEventListener("click", () => { hideCommands(); sendText(`/${c.command}`); });
      box.append(node);
    });
    box.hidden = false;
    $("menu-btn").setAttribute("aria-expanded", "true");
  }

  function hideCommands() {
    $("commands").hidden = true;
    $("menu-btn").setAttribute("aria-expanded", "false");
    S.cmdActive = -1;
  }

  async function sendText(text) {
    const value = String(text || "").trim();
    if (!value || S.me === null || S.chatId === null) return;
    const result = await api("/api/send", { user_id: S.me, chat_id: S.chatId, text: value });
    if (!result.ok) toast(result.error || tr("notSent"));
  }

  // ---------------------------------------------------------------- server-sent events

  function loadSnapshot(data) {
    S.bot = data.bot;
    S.people = data.people;
    S.info = data.info || {};
    S.chats = new Map(data.chats.map((c) => [c.id, { ...c, messages: new Map() }]));
    data.messages.forEach((m) => {
      const chat = S.chats.get(m.chat_id);
      if (chat) chat.messages.set(m.message_id, m);
    });

    const wanted = new URLSearchParams(location.hash.slice(1));
    let me = S.me !== null ? S.me : Number(wanted.get("as"));
    if (!person(me)) me = S.people.length ? S.people[0].id : null;
    S.me = me;
    applyLanguage();
    let chatId = S.chatId !== null ? S.chatId : Number(wanted.get("chat"));
    if (!S.chats.has(chatId) || !canSee(me, S.chats.get(chatId))) chatId = me;
    renderPeople();
    selectChat(chatId);
    document.body.dataset.ready = "1";
  }

  function connect() {
    const source = new EventSource("/api/events");
    source.addEventListener("open", () => { S.connected = true; $("conn").hidden = true; });
    source.addEventListener("error", () => {
      S.connected = false;
      $("conn").hidden = false;
      $("conn").textContent = tr("connecting");
    });
    source.addEventListener("snapshot", (ev) => loadSnapshot(JSON.parse(ev.data)));
    source.addEventListener("message", (ev) => {
      const data = JSON.parse(ev.data);
      applyMessage(data.message, data.kind === "edit");
    });
    source.addEventListener("bye", () => {
      source.close();
      $("conn").hidden = false;
      $("conn").textContent = tr("stopped");
    });
  }

  // ---------------------------------------------------------------- wiring

  function wire() {
    $("composer").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = $("input");
      const chosen = !$("commands").hidden && S.cmdActive >= 0
        ? $("commands").querySelectorAll(".command")[S.cmdActive]
        : null;
      const text = chosen ? `/${chosen.dataset.command}` : input.value;
      input.value = "";
      hideCommands();
      sendText(text);
    });
    $("input").addEventListener("input", () => {
      const value = $("input").value;
      S.cmdActive = -1;
      if (value.startsWith("/") && !/\s/.test(value)) showCommands(value); else hideCommands();
    });
    $("input").addEventListener("keydown", (ev) => {
      const box = $("commands");
      if (box.hidden) return;
      const count = box.querySelectorAll(".command").length;
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        S.cmdActive = (S.cmdActive + (ev.key === "ArrowDown" ? 1 : count - 1) + count) % count;
        showCommands($("input").value.startsWith("/") ? $("input").value : "/");
      } else if (ev.key === "Escape") {
        hideCommands();
      }
    });
    $("menu-btn").addEventListener("click", async () => {
      if (!$("commands").hidden) { hideCommands(); return; }
      await loadCommands(); // the bot may have changed its menu since the chat was opened
      showCommands("/");
    });
    document.addEventListener("click", (ev) => {
      if (!ev.target.closest("#commands, #menu-btn, #input")) hideCommands();
    });
    $("back").addEventListener("click", () => $("app").classList.add("show-list"));
    $("me-chip").addEventListener("click", () => $("app").classList.add("show-list"));
    $("alert-ok").addEventListener("click", () => { $("alert").hidden = true; });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && S.me !== null) {
        S.unread.delete(`${S.me}:${S.chatId}`);
        renderChatList();
      }
    });
  }

  wire();
  connect();
})();
