// Labelling: a queue of prompts; for each, two answers in random left/right order; the person picks
// left, right, tie or skip (keys 1/2/3/4), may edit the better answer first; each decision is saved
// by the server (fsynced) before the next item shows. A reload or a server restart continues with
// the first prompt that has no decision; the answers on screen survive a reload (localStorage).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const NAME = "dpokit.label.name";
  const CURRENT = "dpokit.label.current";
  let pending = [];
  let current = null;  // {item, left: {model, content, sampling}, right: {...}}
  let saving = false;

  function decisionsEnabled(on) {
    for (const id of ["decide-left", "decide-right", "decide-tie", "decide-skip", "regenerate"]) $(id).disabled = !on;
  }

  function progress(counts) {
    $("progress").textContent = `${counts.queued - counts.done} waiting · ${counts.done} decided ` +
      `(${counts.pairs} pairs, ${counts.ties_and_skips} ties or skips)`;
  }

  function sampling() {
    return { temperature: dpokit.number($("temperature"), 0.7), max_tokens: Math.round(dpokit.number($("max-tokens"), 256)) };
  }

  function showPrompt(item) {
    const box = $("prompt");
    box.replaceChildren();
    for (const m of item.prompt) {
      if (item.prompt.length > 1 || m.role !== "user") box.append(dpokit.el("div", { class: "role", text: m.role }));
      box.append(dpokit.el("div", { text: m.content }));
    }
  }

  function showCandidates() {
    for (const side of ["left", "right"]) {
      $("text-" + side).textContent = current[side].content;
      $("text-" + side).hidden = false;
      $("editor-" + side).hidden = true;
      $("editor-" + side).value = current[side].content;
      $("edit-" + side).textContent = "Edit";
    }
  }

  async function candidates(item) {
    if (item.candidates) return item.candidates.map((c) => ({ model: c.model, content: c.content, sampling: c.sampling || {} }));
    const a = $("model-a").value;
    const b = $("model-b").value;
    const s = sampling();
    const body = (model, n) => ({ model, messages: item.prompt, n, ...s });
    if (a === b) {
      const out = await dpokit.chat(body(a, 2));
      return out.choices.map((c) => ({ model: a, content: c.message.content, sampling: s }));
    }
    const [ra, rb] = await Promise.all([dpokit.chat(body(a, 1)), dpokit.chat(body(b, 1))]);
    return [{ model: a, content: ra.choices[0].message.content, sampling: s },
            { model: b, content: rb.choices[0].message.content, sampling: s }];
  }

  async function showNext(regenerate = false) {
    decisionsEnabled(false);
    if (!pending.length) {
      $("item").hidden = true;
      current = null;
      dpokit.setStatus($("status"), "The queue is empty: add a prompt below, or start the server with --prompts FILE.");
      $("add").open = true;
      return;
    }
    const item = pending[0];
    $("item").hidden = false;
    showPrompt(item);
    const saved = dpokit.load(CURRENT, null);
    if (!regenerate && saved && saved.item && saved.item.id === item.id) {
      current = saved;
    } else {
      $("text-left").textContent = "";
      $("text-right").textContent = "";
      dpokit.setStatus($("status"), "generating two answers…");
      try {
        const [a, b] = await candidates(item);
        const swap = Math.random() < 0.5;  // which model is on the left is random
        current = { item, left: swap ? b : a, right: swap ? a : b };
        dpokit.save(CURRENT, current);
      } catch (err) {
        dpokit.setStatus($("status"), err.message, "error");
        $("regenerate").disabled = false;
        return;
      }
    }
    showCandidates();
    decisionsEnabled(true);
    const same = current.left.content.trim() === current.right.content.trim();
    dpokit.setStatus($("status"), same ? "The two answers are the same: tie, skip, or get new answers."
      : "Which answer is better? 1 left · 2 right · 3 tie · 4 skip");
  }

  function toggleEdit(side) {
    const editor = $("editor-" + side);
    const view = $("text-" + side);
    if (editor.hidden) {
      editor.hidden = false;
      view.hidden = true;
      $("edit-" + side).textContent = "Done";
      editor.focus();
    } else {
      view.textContent = editor.value;
      editor.hidden = true;
      view.hidden = false;
      $("edit-" + side).textContent = "Edit";
    }
  }

  function edited(side) {
    const value = $("editor-" + side).value;
    return value !== current[side].content ? value : null;
  }

  async function decide(decision) {
    if (!current || saving || $("decide-left").disabled) return;
    const labeler = $("labeler").value.trim();
    if (!labeler) {
      dpokit.setStatus($("status"), "Type your name first (it is saved with each decision).", "error");
      $("labeler").focus();
      return;
    }
    localStorage.setItem(NAME, labeler);
    saving = true;
    decisionsEnabled(false);
    const side = (s) => ({ ...current[s], edited_content: edited(s) });
    try {
      const out = await dpokit.request("/api/label/decisions", { method: "POST",
        body: { item_id: current.item.id, decision, labeler, left: side("left"), right: side("right") } });
      localStorage.removeItem(CURRENT);
      pending = pending.filter((i) => i.id !== current.item.id);
      progress(out.counts);
      await showNext();
      dpokit.setStatus($("status"), `saved: ${decision} → ${out.file}` + (out.saved ? "" : " (already decided earlier)") +
        (pending.length ? "" : ". The queue is empty."), "ok");
    } catch (err) {
      dpokit.setStatus($("status"), err.message, "error");
      decisionsEnabled(true);
    } finally {
      saving = false;
    }
  }

  async function addPrompt() {
    const text = $("new-prompt").value;
    if (!text.trim()) return;
    try {
      const out = await dpokit.request("/api/label/prompts", { method: "POST",
        body: { prompt: text, added_by: $("labeler").value.trim() || null } });
      $("new-prompt").value = "";
      progress(out.counts);
      if (out.created) {
        pending.push(out.item);
        if (!current) await showNext();
        dpokit.setStatus($("status"), "added to the queue", "ok");
      } else {
        dpokit.setStatus($("status"), "that prompt is already in the queue");
      }
    } catch (err) {
      dpokit.setStatus($("status"), err.message, "error");
    }
  }

  for (const side of ["left", "right"]) {
    $("edit-" + side).addEventListener("click", () => toggleEdit(side));
    $("editor-" + side).addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); toggleEdit(side); } });
  }
  $("decide-left").addEventListener("click", () => decide("left"));
  $("decide-right").addEventListener("click", () => decide("right"));
  $("decide-tie").addEventListener("click", () => decide("tie"));
  $("decide-skip").addEventListener("click", () => decide("skip"));
  $("regenerate").addEventListener("click", () => showNext(true));
  $("add-prompt").addEventListener("click", addPrompt);
  $("new-prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); addPrompt(); }
  });
  $("labeler").addEventListener("change", () => localStorage.setItem(NAME, $("labeler").value.trim()));
  // Enter leaves the name field (its change event keeps the name), so 1-4 decide from the keyboard at once.
  $("labeler").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); e.target.blur(); } });
  document.addEventListener("keydown", (e) => {
    if (dpokit.typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const decision = { 1: "left", 2: "right", 3: "tie", 4: "skip" }[e.key];
    if (decision) { e.preventDefault(); decide(decision); }
  });

  $("labeler").value = localStorage.getItem(NAME) || "";
  Promise.all([dpokit.info(), dpokit.request("/api/label/queue")]).then(async ([info, queue]) => {
    dpokit.fillModels($("model-a"), info.models);
    dpokit.fillModels($("model-b"), info.models, info.models.length > 1 ? info.models[1].id : null);
    $("max-tokens").value = info.defaults.max_tokens;
    pending = queue.pending;
    progress(queue.counts);
    if (!$("labeler").value) $("labeler").focus();
    await showNext();
  }).catch((err) => dpokit.setStatus($("status"), err.message, "error"));
})();
