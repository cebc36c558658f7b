// fpi review: one turn at a time, labelled by keyboard. Every text from the server is put on
// the page with textContent (never innerHTML). Every key press is POSTed and stored before the
// page moves on; key presses made while one is being saved wait their turn; a failed save is
// kept on screen to retry. A note is saved on Enter, or with the label or skip that follows;
// until then its draft lives in localStorage, so not even a reload loses it.
"use strict";

(function () {
  var LABEL_KEYS = "123456";
  var REFRESH_MS = 3000;
  var token = document.querySelector('meta[name="fpi-token"]').getAttribute("content");
  var note = document.getElementById("note");
  var view = null; // the latest state from the server
  var pending = []; // key presses waiting for the save in flight
  var busy = false;
  var failed = null; // the request that could not be saved, kept to retry
  var completed = 0;

  function byId(id) {
    return document.getElementById(id);
  }

  function make(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function fixed(value, digits) {
    return typeof value === "number" ? value.toFixed(digits) : "-";
  }

  // ---- talking to the server ---------------------------------------------------------

  function call(method, path, body) {
    var options = { method: method, cache: "no-store", headers: { "X-FPI-Token": token } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try {
          data = JSON.parse(text);
        } catch (ignored) {
          data = null;
        }
        if (!response.ok) {
          var why = data && data.error ? data.error : text.slice(0, 200);
          throw new Error("HTTP " + response.status + ": " + why);
        }
        if (data === null) throw new Error("the server's answer was not JSON");
        return data;
      });
    });
  }

  // ---- note drafts ---------------------------------------------------------------------

  function draftKey(turnId) {
    return "fpi-review-note\u0000" + (view ? view.annotator : "") + "\u0000" + turnId;
  }

  function readDraft(turnId) {
    try {
      return window.localStorage.getItem(draftKey(turnId)) || "";
    } catch (ignored) {
      return "";
    }
  }

  function writeDraft(turnId, text) {
    try {
      if (text) window.localStorage.setItem(draftKey(turnId), text);
      else window.localStorage.removeItem(draftKey(turnId));
    } catch (ignored) {
      // storage unavailable: the draft still stays in the input until it is saved
    }
  }

  function savedNote() {
    return (view && view.turn && view.turn.note) || "";
  }

  function unsavedNote() {
    var text = note.value.trim();
    return text && text !== savedNote() ? text : null;
  }

  function showNoteState() {
    var state = byId("note-state");
    if (unsavedNote()) state.textContent = "not saved yet: Enter saves it (so does your label)";
    else state.textContent = savedNote() ? "saved" : "";
  }

  note.addEventListener("input", function () {
    if (note.dataset.turn) writeDraft(note.dataset.turn, note.value);
    showNoteState();
  });

  // ---- status line ---------------------------------------------------------------------

  function showStatus(kind, text) {
    var status = byId("status");
    status.className = kind;
    status.textContent = text;
    status.hidden = false;
  }

  function hideStatus() {
    var status = byId("status");
    status.hidden = true;
    status.textContent = "";
  }

  // ---- the actions ---------------------------------------------------------------------

  function requestFor(key) {
    if (key === "retry") return failed;
    if (key === "u") return { kind: "undo", path: "/api/undo", body: {} };
    var turn = view && view.turn;
    if (!turn) {
      showStatus("info", "Nothing left to label in this queue.");
      return null;
    }
    var text = unsavedNote();
    if (key === "note") {
      if (!text) return null;
      return { kind: "note", path: "/api/note", body: { turn_id: turn.turn_id, note: text } };
    }
    if (key === "s") {
      return { kind: "skip", path: "/api/skip", body: { turn_id: turn.turn_id, note: text } };
    }
    var failurePoint = view.classes[LABEL_KEYS.indexOf(key)];
    return {
      kind: "label",
      path: "/api/label",
      body: { turn_id: turn.turn_id, failure_point: failurePoint, note: text },
    };
  }

  function describe(request) {
    if (request.kind === "label")
      return request.body.failure_point + " for turn " + request.body.turn_id;
    if (request.kind === "skip") return "skip of turn " + request.body.turn_id;
    if (request.kind === "note") return "note on turn " + request.body.turn_id;
    return "undo";
  }

  function pump() {
    if (busy || pending.length === 0) return;
    var request = requestFor(pending.shift());
    if (!request) {
      pump();
      return;
    }
    busy = true;
    document.body.dataset.saving = "1";
    markPending(request);
    call("POST", request.path, request.body).then(
      function (state) {
        busy = false;
        failed = null;
        document.body.dataset.saving = "0";
        saved(request, state);
        pump();
      },
      function (error) {
        busy = false;
        failed = request;
        document.body.dataset.saving = "0";
        var dropped = pending.length;
        pending = [];
        showStatus(
          "error",
          "Not saved: " + error.message + ". Your " + describe(request) +
            " is kept: press Enter to retry." +
            (dropped ? " " + dropped + " later key press(es) were not applied." : "")
        );
        document.body.dataset.failed = "1";
      }
    );
  }

  function saved(request, state) {
    completed += 1;
    document.body.dataset.actions = String(completed);
    document.body.dataset.failed = "0";
    if (request.kind !== "undo") writeDraft(request.body.turn_id, "");
    if (request.kind === "label" || request.kind === "note") {
      showStatus("info", "Saved " + describe(request) + ".");
    } else if (request.kind === "undo" && state.undone) {
      var undone = state.undone;
      if (undone.note && !readDraft(undone.turn_id)) writeDraft(undone.turn_id, undone.note);
      showStatus("info", "Undone: " + undone.failure_point + " for turn " + undone.turn_id + ".");
    } else {
      hideStatus();
    }
    render(state);
  }

  function markPending(request) {
    var buttons = byId("keys").querySelectorAll("button");
    for (var i = 0; i < buttons.length; i += 1) {
      var match = request.kind === "label" && buttons[i].dataset.cls === request.body.failure_point;
      buttons[i].classList.toggle("pending", match);
    }
  }

  function press(key) {
    pending.push(key);
    pump();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (document.activeElement === note) {
      if (event.key === "Enter" || event.key === "Escape") {
        event.preventDefault();
        note.blur();
        if (event.key === "Enter") press("note");
      }
      return;
    }
    var key = event.key;
    if (key === "n") {
      event.preventDefault();
      note.focus();
    } else if ((key.length === 1 && LABEL_KEYS.indexOf(key) >= 0) || key === "s" || key === "u") {
      event.preventDefault();
      press(key);
    } else if (key === "Enter" && failed) {
      event.preventDefault();
      press("retry");
    }
  });

  // ---- rendering -----------------------------------------------------------------------

  function fillStages(table, stages) {
    clear(table);
    stages.forEach(function (stage) {
      var row = make("tr");
      row.appendChild(make("th", stage.stage));
      row.appendChild(make("td", stage.output));
      table.appendChild(row);
    });
  }

  function fillNeighbour(box, turn, absent) {
    clear(box);
    if (!turn) {
      box.appendChild(make("p", absent, "none"));
      return;
    }
    box.appendChild(make("p", "turn " + turn.turn_id + " (index " + turn.turn_index + ")", "none"));
    var table = make("table", null, "stages");
    fillStages(table, turn.stages);
    box.appendChild(table);
  }

  function renderProgress(state) {
    var p = state.progress;
    var parts = state.classes.map(function (name) {
      return name + " " + p.per_class[name];
    });
    byId("progress").textContent =
      state.annotator + ": " + p.labelled + " labelled (" + p.this_session +
      " this session) · " + parts.join(" · ") + " · " + p.labelled_by_anyone + " of " +
      p.turns + " turns labelled by anyone" + (p.skipped ? " · " + p.skipped + " skipped" : "");
  }

  function renderModel(model) {
    var text = "model v" + model.version +
      (model.version ? ", refitted on " + model.labels + " labels" : " (the starting model)");
    if (model.refitting) text += " · refitting in the background…";
    else text += " · next refit in " + model.next_refit_in + " label(s)";
    if (model.error) text += " · last refit failed: " + model.error;
    byId("model").textContent = text;
  }

  function renderPrediction(prediction) {
    byId("guess").textContent =
      prediction.predicted + " (confidence " + fixed(prediction.confidence, 3) + ")";
    var table = byId("probabilities");
    clear(table);
    Object.keys(prediction.probabilities).forEach(function (name) {
      var p = prediction.probabilities[name];
      var row = make("tr", null, name === prediction.predicted ? "top" : "");
      row.appendChild(make("th", name));
      var cell = make("td");
      var meter = make("meter");
      meter.min = 0;
      meter.max = 1;
      meter.value = p;
      cell.appendChild(meter);
      row.appendChild(cell);
      row.appendChild(make("td", fixed(p, 3), "p"));
      table.appendChild(row);
    });
    var reasons = byId("reasons");
    clear(reasons);
    prediction.reasons.forEach(function (reason) {
      var item = make("li", reason.text + " ");
      item.appendChild(make("span", "(" + (reason.contribution >= 0 ? "+" : "") +
        fixed(reason.contribution, 2) + ")", "c"));
      reasons.appendChild(item);
    });
    if (prediction.reasons.length === 0) reasons.appendChild(make("li", "(no positive reasons)"));
  }

  function renderKeys(classes, guess) {
    var keys = byId("keys");
    clear(keys);
    classes.forEach(function (name, i) {
      var button = make("button", LABEL_KEYS[i] + "  " + name, name === guess ? "guess" : "");
      button.type = "button";
      button.dataset.cls = name;
      button.disabled = !view.turn;
      button.addEventListener("click", function () {
        button.blur();
        press(LABEL_KEYS[i]);
      });
      keys.appendChild(button);
    });
  }

  function render(state) {
    view = state;
    renderProgress(state);
    renderModel(state.model);
    var turn = state.turn;
    document.body.dataset.turn = turn ? turn.turn_id : "";
    document.body.dataset.state = turn ? "ready" : "done";
    renderKeys(state.classes, turn ? turn.prediction.predicted : null);
    if (!turn) {
      byId("turn-title").textContent = "Nothing left to label: every turn has a label.";
      ["turn-meta", "why", "guess"].forEach(function (id) {
        byId(id).textContent = "";
      });
      ["stages", "previous", "next", "probabilities", "reasons"].forEach(function (id) {
        clear(byId(id));
      });
      note.dataset.turn = "";
      note.value = "";
      showNoteState();
      return;
    }
    byId("turn-title").textContent = "turn " + turn.turn_id;
    byId("turn-meta").textContent =
      "dialogue " + turn.dialogue_id + " · turn " + turn.position + " of " +
      turn.dialogue_turns + (turn.timestamp ? " · " + turn.timestamp : "") + " · " + turn.source;
    fillStages(byId("stages"), turn.stages);
    byId("why").textContent = turn.why ? "queued because: " + turn.why : "";
    fillNeighbour(byId("previous"), turn.previous, "(the first turn of its dialogue)");
    fillNeighbour(byId("next"), turn.next, "(the last turn of its dialogue)");
    renderPrediction(turn.prediction);
    var draft = readDraft(turn.turn_id);
    if (note.dataset.turn !== turn.turn_id || !draft) {
      note.dataset.turn = turn.turn_id;
      note.value = draft || turn.note || "";
    }
    showNoteState();
  }

  function refreshStatus() {
    // While a refit runs, keep the model line current without touching the turn on screen.
    if (!busy && view && view.model.refitting) {
      call("GET", "/api/state").then(
        function (state) {
          if (busy || !view) return;
          view.model = state.model;
          view.progress = state.progress;
          renderProgress(view);
          renderModel(view.model);
        },
        function () {
          // the next action reports a lost server; nothing to do here
        }
      );
    }
  }

  call("GET", "/api/state").then(
    function (state) {
      render(state);
      document.body.dataset.actions = "0";
      document.body.dataset.saving = "0";
      window.setInterval(refreshStatus, REFRESH_MS);
    },
    function (error) {
      showStatus("error", "Cannot reach the review server (" + error.message + "); reload to retry.");
      document.body.dataset.state = "error";
    }
  );
})();
