// The chat page: pick a model, stream its answer, keep the history, set a system prompt, stop a reply.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STORE = "dpokit.chat";
  const state = dpokit.load(STORE, { model: null, system: "", messages: [] });
  let controller = null;

  function persist() {
    state.model = $("model").value;
    state.system = $("system").value;
    dpokit.save(STORE, state);
  }

  function bubble(role, text, note) {
    const body = dpokit.el("div", { class: "text", text });
    const node = dpokit.el("div", { class: "message " + role },
      dpokit.el("div", { class: "role", text: role === "user" ? "you" : "assistant" }), body);
    if (note) node.append(dpokit.el("div", { class: "note", text: note }));
    $("history").append(node);
    node.scrollIntoView({ block: "end" });
    return { node, body };
  }

  function render() {
    $("history").replaceChildren();
    for (const m of state.messages) bubble(m.role, m.content, m.note);
  }

  function busy(on) {
    $("send").disabled = on;
    $("stop").disabled = !on;
  }

  async function send() {
    const text = $("input").value;
    if (!text.trim() || controller) return;
    $("input").value = "";
    state.messages.push({ role: "user", content: text });
    persist();
    bubble("user", text);
    const reply = bubble("assistant", "");
    const conversation = [];
    if ($("system").value.trim()) conversation.push({ role: "system", content: $("system").value });
    for (const m of state.messages) conversation.push({ role: m.role, content: m.content });
    controller = new AbortController();
    busy(true);
    dpokit.setStatus($("status"), "generating…");
    try {
      const result = await dpokit.streamChat({
        model: $("model").value, messages: conversation,
        temperature: dpokit.number($("temperature"), 0.7), max_tokens: Math.round(dpokit.number($("max-tokens"), 256)),
      }, (full) => { reply.body.textContent = full; }, controller.signal);
      const note = result.aborted ? "stopped" : result.finish_reason === "length" ? "cut at max tokens" : null;
      state.messages.push({ role: "assistant", content: result.text, note });
      if (note) reply.node.append(dpokit.el("div", { class: "note", text: note }));
      dpokit.setStatus($("status"), "");
    } catch (err) {
      state.messages.pop();  // the question stays in the box to send again
      $("input").value = text;
      reply.node.remove();
      $("history").lastChild && $("history").lastChild.remove();
      dpokit.setStatus($("status"), err.message, "error");
    } finally {
      controller = null;
      busy(false);
      persist();
      $("input").focus();
    }
  }

  function stop() {
    if (controller) controller.abort();
  }

  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") stop(); });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", () => { stop(); state.messages = []; persist(); render(); $("input").focus(); });
  $("model").addEventListener("change", persist);
  $("system").addEventListener("change", persist);

  dpokit.info().then((info) => {
    dpokit.fillModels($("model"), info.models, state.model);
    $("max-tokens").value = info.defaults.max_tokens;
    $("system").value = state.system || "";
    render();
    $("input").focus();
  }).catch((err) => dpokit.setStatus($("status"), err.message, "error"));
})();
