// Blind comparison: one prompt, two models (or two samples of one), answers side by side in random
// order with the names hidden until the vote; a running tally per pair of models (in localStorage).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TALLY = "dpokit.compare.tally";
  let round = null;  // {left: model, right: model, done: bool}

  function votesEnabled(on) {
    for (const id of ["vote-left", "vote-right", "vote-tie"]) $(id).disabled = !on;
  }

  function pairKey(a, b) {
    return [a, b].sort().join(" vs ");
  }

  function renderTally() {
    const tally = dpokit.load(TALLY, {});
    const rows = Object.entries(tally).map(([pair, t]) => {
      const wins = Object.entries(t.wins).map(([m, n]) => `${m}: ${n}`).join(", ");
      return dpokit.el("tr", {}, dpokit.el("td", { text: pair }), dpokit.el("td", { text: wins }),
        dpokit.el("td", { text: String(t.ties) }), dpokit.el("td", { text: String(t.votes) }));
    });
    $("tally").tBodies[0].replaceChildren(...rows);
  }

  async function generate() {
    const prompt = $("prompt").value;
    if (!prompt.trim() || (round && round.running)) return;
    const a = $("model-a").value;
    const b = $("model-b").value;
    const swap = Math.random() < 0.5;
    round = { left: swap ? b : a, right: swap ? a : b, running: true, voted: false };
    for (const side of ["left", "right"]) {
      $("text-" + side).textContent = "";
      $("name-" + side).textContent = "";
      $("side-" + side).classList.remove("winner");
    }
    votesEnabled(false);
    $("generate").disabled = true;
    const temperature = dpokit.number($("temperature"), 0.7);
    if (a === b && temperature === 0) dpokit.setStatus($("status"), "same model at temperature 0: both answers will be the same");
    else dpokit.setStatus($("status"), "generating…");
    const body = (model) => ({ model, messages: [{ role: "user", content: prompt }], temperature,
      max_tokens: Math.round(dpokit.number($("max-tokens"), 256)) });
    try {
      await Promise.all(["left", "right"].map((side) => dpokit.streamChat(body(round[side]),
        (full) => { $("text-" + side).textContent = full; })));
      votesEnabled(true);
      dpokit.setStatus($("status"), "which answer is better? (1 left, 2 right, 3 tie)");
    } catch (err) {
      dpokit.setStatus($("status"), err.message, "error");
    } finally {
      round.running = false;
      $("generate").disabled = false;
    }
  }

  function vote(choice) {
    if (!round || round.running || round.voted) return;
    round.voted = true;
    votesEnabled(false);
    $("name-left").textContent = round.left;
    $("name-right").textContent = round.right;
    const tally = dpokit.load(TALLY, {});
    const key = pairKey(round.left, round.right);
    const entry = tally[key] || { wins: {}, ties: 0, votes: 0 };
    for (const m of [round.left, round.right]) entry.wins[m] = entry.wins[m] || 0;
    entry.votes += 1;
    if (choice === "tie") entry.ties += 1;
    else {
      entry.wins[round[choice]] += 1;
      $("side-" + choice).classList.add("winner");
    }
    tally[key] = entry;
    dpokit.save(TALLY, tally);
    renderTally();
    const said = choice === "tie" ? "a tie" : `${round[choice]} (${choice})`;
    dpokit.setStatus($("status"), `you voted for ${said}. Left was ${round.left}, right was ${round.right}.`, "ok");
  }

  $("generate").addEventListener("click", generate);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); }
  });
  $("vote-left").addEventListener("click", () => vote("left"));
  $("vote-right").addEventListener("click", () => vote("right"));
  $("vote-tie").addEventListener("click", () => vote("tie"));
  $("reset-tally").addEventListener("click", () => { dpokit.save(TALLY, {}); renderTally(); });
  document.addEventListener("keydown", (e) => {
    if (dpokit.typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const choice = { 1: "left", 2: "right", 3: "tie" }[e.key];
    if (choice) { e.preventDefault(); vote(choice); }
  });

  dpokit.info().then((info) => {
    dpokit.fillModels($("model-a"), info.models);
    dpokit.fillModels($("model-b"), info.models, info.models.length > 1 ? info.models[1].id : null);
    $("max-tokens").value = info.defaults.max_tokens;
    renderTally();
  }).catch((err) => dpokit.setStatus($("status"), err.message, "error"));
})();
