// dpokit serve: what the three pages share. Plain JavaScript, no build step, no CDN.
// Model output is only ever put into the page as text (textContent / text nodes), never as HTML.
"use strict";

const dpokit = (() => {
  const KEY_STORAGE = "dpokit.apiKey";

  function apiKey() {
    return localStorage.getItem(KEY_STORAGE) || "";
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = apiKey();
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }

  // An element with text content and attributes; children are nodes or strings (as text).
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // Ask for the API key (the server answered 401); resolves once one is saved.
  let asking = null;
  function askKey(message) {
    if (asking) return asking;
    asking = new Promise((resolve) => {
      const input = el("input", { type: "password", id: "api-key-input", autocomplete: "off", "aria-label": "API key" });
      const dialog = el("dialog", { class: "key-dialog" },
        el("form", { method: "dialog" },
          el("p", { text: message || "This server needs an API key." }),
          input,
          el("button", { type: "submit", text: "Save key" })));
      dialog.addEventListener("close", () => {
        localStorage.setItem(KEY_STORAGE, input.value.trim());
        dialog.remove();
        asking = null;
        resolve();
      });
      document.body.append(dialog);
      dialog.showModal();
      input.focus();
    });
    return asking;
  }

  async function errorMessage(response) {
    try {
      const data = await response.json();
      if (data && data.error && data.error.message) return data.error.message;
    } catch (e) { /* not JSON */ }
    return `${response.status} ${response.statusText}`;
  }

  // JSON request to the server; asks for the key on 401 and retries.
  async function request(path, { method = "GET", body, signal } = {}) {
    for (;;) {
      const response = await fetch(path, {
        method, headers: headers(), signal,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (response.status === 401) {
        await askKey(await errorMessage(response));
        continue;
      }
      if (!response.ok) throw new Error(await errorMessage(response));
      return response.json();
    }
  }

  // Stream a chat completion (SSE). onText(fullText, piece) is called as text arrives.
  // Resolves to {text, finish_reason}; an abort keeps what arrived ({..., aborted: true}).
  async function streamChat(body, onText, signal) {
    let response;
    for (;;) {
      response = await fetch("/v1/chat/completions", {
        method: "POST", headers: headers(), signal, body: JSON.stringify({ ...body, stream: true }),
      });
      if (response.status !== 401) break;
      await askKey(await errorMessage(response));
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let text = "";
    let finish = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const data = line.slice(6);
            if (data === "[DONE]") return { text, finish_reason: finish };
            const chunk = JSON.parse(data);
            if (chunk.error) throw new Error(chunk.error.message);
            for (const choice of chunk.choices || []) {
              const piece = choice.delta && choice.delta.content;
              if (piece) {
                text += piece;
                onText(text, piece);
              }
              if (choice.finish_reason) finish = choice.finish_reason;
            }
          }
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return { text, finish_reason: null, aborted: true };
      throw err;
    }
    return { text, finish_reason: finish };
  }

  async function chat(body, signal) {
    return request("/v1/chat/completions", { method: "POST", body: { ...body, stream: false }, signal });
  }

  async function info() {
    return request("/api/info");
  }

  function fillModels(select, models, preferred) {
    select.replaceChildren(...models.map((m) => el("option", { value: m.id, text: m.parent ? `${m.id} (LoRA on ${m.parent})` : m.id })));
    if (preferred && models.some((m) => m.id === preferred)) select.value = preferred;
  }

  // True while the person is typing in a field (then 1/2/3/4 are text, not shortcuts).
  function typing(event) {
    const t = event.target;
    return t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  }

  function number(input, fallback) {
    const value = parseFloat(input.value);
    return Number.isFinite(value) ? value : fallback;
  }

  function load(key, fallback) {
    try {
      const value = JSON.parse(localStorage.getItem(key));
      return value === null ? fallback : value;
    } catch (e) {
      return fallback;
    }
  }

  function save(key, value) {
    localStorage.setItem(key, JSON.stringify(value));
  }

  function setStatus(node, text, kind) {
    node.textContent = text;
    node.className = "status" + (kind ? " " + kind : "");
  }

  return { el, request, streamChat, chat, info, fillModels, typing, number, load, save, setStatus, apiKey };
})();
