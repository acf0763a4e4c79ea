// The draw-a-digit page: strokes on a canvas -> predict's preprocessing (preprocess.js) ->
// onnxruntime-web on the exported .onnx file -> ten probabilities. In number mode the ink is
// first split into digits as predict does (segment.js). When a stroke ends, the page also shows
// why (explain.js): the evidence map, every model's answer side by side, and the feature maps
// of the model's inside file. Served by keras_digits.serve.
import { COARSE, evidenceMap, evidenceRgba, strongestChannels } from "/explain.js";
import { configure, FRAME, hasInk, inkMap, mnistStyle, rgbaToGray } from "/preprocess.js";
import { configureSegmentation, inkMask, leftOut, marks, splitNumber } from "/segment.js";

// MNIST strokes are about 2 of 28 pixels wide; the pad is 10x larger.
const BRUSH = 18;

const pad = document.getElementById("pad");
const ink = pad.getContext("2d", { willReadFrequently: true });
const seen = document.getElementById("seen").getContext("2d");
const picker = document.getElementById("model-picker");
const message = document.getElementById("message");
const bars = document.getElementById("bars");
const numberMode = document.getElementById("number-mode");
const digitsRow = document.getElementById("digits");
const evidenceCanvas = document.getElementById("evidence").getContext("2d");
const allModels = document.getElementById("all-models");
const insideSection = document.getElementById("inside-section");
const insideMaps = document.getElementById("inside");
const CHANNELS = 8; // explain.CHANNELS: feature maps shown per layer
const EVIDENCE_CHUNK = 32; // occluded inputs per run while the full map is computed
// Canvas sizes: a square for one digit, a wide strip for a number.
const PAD_SIZES = { digit: [280, 280], number: [500, 180] }; // under predict's 512-px WORK_SIZE

const state = {
  ort: null,
  session: null,
  model: null, // the picker entry of the loaded model
  models: [],
  strokes: [], // each a list of [x, y] points, kept for Undo
  drawing: null,
  running: null, // the classification in flight
  again: false, // the drawing changed while classifying
  version: 0, // bumped whenever what the page should show changes (the ink, the model)
  settled: -1, // the version whose reading, and explanation if any, is all on the page
  lastRead: null, // { version, pixels, probabilities } of the latest digit read
  unsure: null, // contract.UNSURE, from the server
  check: null, // the session of the model whose opinion joins the unsure flag (predict's --check)
  checks: new Map(), // check sessions by file, loaded once
  verifier: null, // the one-digit verifier's session, when the server has one
  sessions: new Map(), // every listed model's session by file, loaded once, for side by side
  inside: null, // { session, layers }: the picked model's inside file, when export made one
  strokeEnded: null, // performance.now() when the last stroke ended
};

// For people and for tests: the latest answer and a way to wait for it.
window.digitApp = {
  result: null,
  // Milliseconds from the end of the last stroke until each part of the explanation showed.
  timing: null,
  explanation: null, // the evidence map, every model's answer and the feature maps shown
  reads: 0, // how many drawings the page has preprocessed and classified
  whenIdle: async () => {
    while (state.running) await state.running;
  },
};

function show(status, text) {
  document.body.dataset.status = status;
  message.textContent = text;
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

// ---- drawing ------------------------------------------------------------------------------

function paint() {
  state.version += 1;
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.strokeStyle = ink.fillStyle = "#000";
  ink.lineWidth = BRUSH;
  ink.lineCap = ink.lineJoin = "round";
  for (const points of state.strokes) {
    ink.beginPath();
    ink.moveTo(...points[0]);
    if (points.length === 1) {
      ink.arc(points[0][0], points[0][1], BRUSH / 2, 0, 2 * Math.PI);
      ink.fill();
      continue;
    }
    for (const point of points.slice(1)) ink.lineTo(...point);
    ink.stroke();
  }
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * (pad.width / box.width),
    (event.clientY - box.top) * (pad.height / box.height)];
}

pad.addEventListener("pointerdown", (event) => {
  pad.setPointerCapture(event.pointerId);
  state.drawing = [padPoint(event)];
  state.strokes.push(state.drawing);
  paint();
  if (!numberMode.checked) classifySoon();
});
pad.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  state.drawing.push(padPoint(event));
  paint();
  if (!numberMode.checked) classifySoon(); // a number is read when each stroke ends
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    state.drawing = null;
    state.strokeEnded = performance.now();
    classifySoon();
  });
}
document.getElementById("clear").addEventListener("click", () => {
  state.strokes = [];
  paint();
  classifySoon();
});
document.getElementById("undo").addEventListener("click", () => {
  state.strokes.pop();
  paint();
  classifySoon();
});

// ---- classifying ---------------------------------------------------------------------------

function renderBars(probabilities) {
  const classes = state.model ? state.model.classes : [];
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  bars.replaceChildren(...classes.map((name, i) => {
    const p = probabilities ? probabilities[i] : 0;
    const row = document.createElement("li");
    row.className = i === best ? "top" : "";
    const label = document.createElement("span");
    label.textContent = name;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${100 * p}%`;
    if (!probabilities) bar.style.minWidth = "0"; // no answer yet: no bars at all
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = probabilities ? percent(p) : "";
    row.append(label, bar, value);
    return row;
  }));
}

function renderSeen(pixels) {
  const image = seen.createImageData(FRAME, FRAME);
  for (let i = 0; i < FRAME * FRAME; i++) {
    const v = pixels ? Math.round(Math.min(255, Math.max(0, pixels[i]))) : 0;
    image.data.set([v, v, v, 255], 4 * i);
  }
  seen.putImageData(image, 0, 0);
}

// The ink of the canvas (preprocess.ink_map), or null when nothing is drawn.
function canvasInk() {
  const { data } = ink.getImageData(0, 0, pad.width, pad.height);
  const map = inkMap(rgbaToGray(data, pad.width, pad.height));
  return hasInk(map) ? map : null;
}

async function probabilitiesOf(inputs, session = state.session) {
  const { ort } = state;
  const batch = new Float32Array(inputs.length * FRAME * FRAME);
  inputs.forEach((pixels, i) => batch.set(pixels, i * FRAME * FRAME));
  const output = await session.run({
    [session.inputNames[0]]: new ort.Tensor("float32", batch, [inputs.length, FRAME, FRAME, 1]) });
  const flat = Array.from(output[session.outputNames[0]].data);
  const n = flat.length / inputs.length;
  return inputs.map((_, i) => flat.slice(i * n, (i + 1) * n));
}

const toPixels = (pieceInk) => mnistStyle(pieceInk).map((v) => v * 255);

// Why an answer should not be trusted (reader.DigitReader's rule), or null. `support` is the
// answer's probability, or with a check model the mean of both models' probabilities for it.
function unsureReason(support, markCount) {
  if (markCount > state.unsure.MAX_MARKS) return `${markCount} separate marks, not one digit`;
  if (support < state.unsure.BELOW) {
    return `${state.check ? "the two models agree" : "confidence"} below ` +
      `${Math.round(100 * state.unsure.BELOW)}%`;
  }
  return null;
}

// Each input's probabilities, with the answer and its support (the check model's opinion in).
async function readAll(inputs) {
  const all = await probabilitiesOf(inputs);
  const checks = state.check ? await probabilitiesOf(inputs, state.check) : null;
  return all.map((probabilities, i) => {
    const best = probabilities.indexOf(Math.max(...probabilities));
    const support = checks ? (probabilities[best] + checks[i][best]) / 2 : probabilities[best];
    return { probabilities, top: best, label: state.model.classes[best],
      probability: probabilities[best], support };
  });
}

// The drawing's answer; once no stroke is in progress, its explanation too. A drawing read
// while its stroke went on is not read again when the stroke ends: only explained.
async function classifyDigit(version) {
  if (state.lastRead?.version !== version) {
    const map = canvasInk();
    if (!map) return showBlank();
    const pixels = toPixels(map);
    renderSeen(pixels);
    window.digitApp.reads += 1;
    const [read] = await readAll([pixels]);
    const reason = unsureReason(read.support, marks(inkMask(map)).kept.length);
    renderBars(read.probabilities);
    window.digitApp.result = { model: state.model.file, check: checkFile(), ...read,
      unsure: reason !== null, reason, pixels: Array.from(pixels) };
    show("ready", `${state.model.name} reads ${read.label} (${percent(read.probability)})` +
      (reason ? ` but is unsure: ${reason}.` : "."));
    state.lastRead = { version, pixels, probabilities: read.probabilities };
  }
  if (state.drawing || state.version !== version) return false;
  const { pixels, probabilities } = state.lastRead;
  return explainDigit(pixels, probabilities, since(), () => state.version === version &&
    !state.drawing);
}

// ---- explaining (after each stroke) --------------------------------------------------------

function since() {
  return state.strokeEnded === null ? null : performance.now() - state.strokeEnded;
}

function renderEvidence(pixels, found) {
  const image = evidenceCanvas.createImageData(FRAME, FRAME);
  if (found) image.data.set(evidenceRgba(pixels, found.map));
  else image.data.fill(255);
  evidenceCanvas.putImageData(image, 0, 0);
}

// The other listed models of the picked one's classes, each session loaded once.
async function sideBySideSessions() {
  const usable = state.models.filter((m) => !m.error && m.file !== state.model.file &&
    m.classes.join("|") === state.model.classes.join("|") && !m.name.includes("."));
  const sessions = [[state.model, state.session]];
  for (const model of usable) {
    if (!state.sessions.has(model.file)) {
      try {
        const response = await fetch(`/models/${encodeURIComponent(model.file)}`);
        if (!response.ok) throw new Error(await errorText(response));
        state.sessions.set(model.file, await state.ort.InferenceSession.create(
          new Uint8Array(await response.arrayBuffer()),
          { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
      } catch (error) {
        console.warn(`${model.file} did not load for the side-by-side answers: ${error.message}`);
        state.sessions.set(model.file, null);
      }
    }
    if (state.sessions.get(model.file)) sessions.push([model, state.sessions.get(model.file)]);
  }
  return sessions;
}

// Every model's reading of the same inputs (one input: a digit; several: a number's digits).
async function renderAllModels(inputs) {
  const answers = [];
  for (const [model, session] of await sideBySideSessions()) {
    const all = await probabilitiesOf(inputs, session);
    const tops = all.map((p) => p.indexOf(Math.max(...p)));
    answers.push({ model: model.name, file: model.file,
      answer: tops.map((t) => model.classes[t]).join(""),
      probability: inputs.length === 1 ? all[0][tops[0]] : null });
  }
  allModels.replaceChildren(...answers.map((a) => {
    const row = document.createElement("li");
    row.className = a.file === state.model.file ? "picked" : "";
    row.textContent = `${a.model}: ${a.answer}` +
      (a.probability === null ? "" : ` (${percent(a.probability)})`);
    return row;
  }));
  return answers;
}

// The picked model's conv layers for one input: each layer's most active feature maps.
async function renderInside(pixels) {
  if (!state.inside) {
    insideSection.hidden = true;
    return [];
  }
  const { session, layers } = state.inside;
  const outputs = await session.run({ [session.inputNames[0]]:
    new state.ort.Tensor("float32", Float32Array.from(pixels), [1, FRAME, FRAME, 1]) });
  const shown = [];
  const rows = layers.filter((layer) => layer.kind === "conv").map((layer) => {
    const tensor = outputs[layer.output];
    const [, channels, height, width] = tensor.dims;
    const values = tensor.data;
    const top = Math.max(1e-12, ...values);
    const chosen = strongestChannels(values, channels, CHANNELS);
    shown.push({ layer: layer.layer, channels: chosen });
    const row = document.createElement("div");
    row.className = "layer";
    const name = document.createElement("span");
    name.textContent = layer.layer;
    row.append(name, ...chosen.map((c) => {
      const canvas = document.createElement("canvas");
      [canvas.width, canvas.height] = [width, height];
      const image = canvas.getContext("2d").createImageData(width, height);
      for (let i = 0; i < width * height; i++) {
        const v = 255 * (1 - Math.min(1, Math.max(0, values[c * width * height + i] / top)));
        image.data.set([v, v, v, 255], 4 * i);
      }
      canvas.getContext("2d").putImageData(image, 0, 0);
      canvas.title = `channel ${c}`;
      return canvas;
    }));
    return row;
  });
  insideMaps.replaceChildren(...rows);
  document.getElementById("inside-model").textContent = state.model.name;
  insideSection.hidden = rows.length === 0;
  return shown;
}

// After a stroke: a first evidence map from a few large squares, then the feature maps and
// every model's answer, then the full map; a new stroke abandons what is left.
// `wanted()` turns false when the drawing changes; the rest is then abandoned (false).
async function explainDigit(pixels, probabilities, answered, wanted) {
  const timing = { answer: answered };
  const classify = (inputs) => probabilitiesOf(inputs);
  const coarse = await evidenceMap(classify, pixels, probabilities, { ...COARSE, wanted });
  if (!coarse) return false;
  renderEvidence(pixels, coarse);
  timing.evidence = since();
  const inside = await renderInside(pixels);
  timing.inside = since();
  const models = await renderAllModels([pixels]);
  timing.models = since();
  window.digitApp.timing = timing;
  window.digitApp.explanation = { coarse: Array.from(coarse.map), inside, models, full: null };
  const full = await evidenceMap(classify, pixels, probabilities,
    { chunk: EVIDENCE_CHUNK, wanted });
  if (!full) return false;
  renderEvidence(pixels, full);
  timing.full = since();
  window.digitApp.explanation.full = Array.from(full.map);
  return true;
}

// Why a piece of a number may not be one digit (reader._piece_doubts): cut from one mark that
// scored nearly as well whole, or wide and given all but no chance of being one whole digit by
// the verifier (`whole`, null without it).
function pieceDoubts(pieces, whole) {
  const S = state.segmentation;
  return pieces.map((piece, i) => {
    const [left, top, right, bottom] = piece.box;
    if (piece.cutDoubt >= S.CLOSE_CUT) {
      return "cut from one mark that reads nearly as well whole: it may be one digit";
    }
    if (piece.cutHeight < S.SHORT_CUT) {
      return "cut from a mark much taller than itself: it may be part of one digit";
    }
    if (whole && whole[i][0] < S.TWO_BELOW && right - left >= S.TWO_WIDE * (bottom - top)) {
      return "wide and not like one whole digit: it may be two";
    }
    return null;
  });
}

// The number's reading (true: all on the page).
async function classifyNumber(map) {
  window.digitApp.reads += 1;
  let pieces;
  try {
    // A piece's score: the model's top probability, times the verifier's that it is one digit.
    pieces = await splitNumber(map, async (inks) => {
      const inputs = inks.map(toPixels);
      const sure = (await probabilitiesOf(inputs)).map((p) => Math.max(...p));
      if (!state.verifier) return sure;
      const whole = await probabilitiesOf(inputs, state.verifier);
      return sure.map((p, i) => p * whole[i][0]);
    }, state.verifier !== null);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    window.digitApp.result = null;
    renderDigits([]);
    show("ready", `That is ${error.message}, more than a number of ` +
      `${state.segmentation.MAX_DIGITS} digits: clear it and write fewer.`);
    return true;
  }
  const inputs = pieces.map((piece) => toPixels(piece.ink));
  const whole = state.verifier ? await probabilitiesOf(inputs, state.verifier) : null;
  const doubts = pieceDoubts(pieces, whole);
  const digits = (await readAll(inputs)).map((read, i) => {
    const reason = doubts[i] ?? unsureReason(read.support, 0);
    return { ...read, unsure: reason !== null, reason, box: pieces[i].box,
      pixels: Array.from(inputs[i]) };
  });
  renderDigits(digits);
  const number = digits.map((d) => d.label).join("");
  const models = state.drawing ? null : await renderAllModels(inputs);
  // Ink left out of every digit (reader.read_number's rule): a digit may be missing.
  const missed = leftOut(map, pieces);
  const reason = missed >= state.segmentation.LEFT_OUT_HEIGHT
    ? `ink left out of the digits (a mark ${Math.round(100 * missed)}% of their height): ` +
      "a digit may be missing" : null;
  window.digitApp.result = { model: state.model.file, check: checkFile(), number, digits,
    unsure: reason !== null || digits.some((d) => d.unsure), reason,
    verified: state.verifier !== null };
  if (models) window.digitApp.explanation = { models };
  const doubtful = digits.filter((d) => d.unsure).length;
  show("ready", `${state.model.name} reads ${number}` + (reason ? ` but is unsure: ${reason}.`
    : doubtful ? ` but is unsure of ${doubtful} digit${doubtful > 1 ? "s" : ""} (marked ?).`
      : "."));
  return true;
}

function renderDigits(digits) {
  digitsRow.replaceChildren(...digits.map((d) => {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = FRAME;
    const image = canvas.getContext("2d").createImageData(FRAME, FRAME);
    d.pixels.forEach((v, i) => image.data.set([v, v, v, 255], 4 * i));
    canvas.getContext("2d").putImageData(image, 0, 0);
    const caption = document.createElement("figcaption");
    caption.textContent = `${d.label}${d.unsure ? "?" : ""} ${percent(d.probability)}`;
    if (d.unsure) caption.title = d.reason;
    figure.append(canvas, caption);
    return figure;
  }));
}

// The empty page's prompt (true: nothing more to show).
function showBlank() {
  const number = numberMode.checked;
  renderSeen(null);
  renderDigits([]);
  window.digitApp.result = null;
  window.digitApp.explanation = null;
  renderBars(null);
  renderEvidence(null, null);
  allModels.replaceChildren();
  insideSection.hidden = true;
  show("ready", number ? "Write a number in the strip." : "Draw a digit in the box.");
  return true;
}

// Shows the drawing's reading; a version already on the page in full is not read again.
async function classify() {
  const version = state.version;
  if (state.settled === version) return;
  let done;
  if (numberMode.checked) {
    const map = canvasInk();
    if (!map) {
      done = showBlank();
    } else {
      renderSeen(null);
      renderBars(null);
      renderEvidence(null, null);
      done = await classifyNumber(map);
    }
  } else {
    renderDigits([]);
    done = await classifyDigit(version);
  }
  if (done && state.version === version && !state.drawing) state.settled = version;
}

// One classification at a time; changes made meanwhile are picked up right after.
function classifySoon() {
  if (!state.session) return;
  if (state.running) {
    state.again = true;
    return;
  }
  state.running = (async () => {
    do {
      state.again = false;
      try {
        await classify();
      } catch (error) {
        show("error", `${state.model.file} failed on this drawing: ${error.message}`);
      }
    } while (state.again);
  })().finally(() => {
    state.running = null;
  });
}

// ---- models --------------------------------------------------------------------------------

async function errorText(response) {
  try {
    return (await response.json()).error;
  } catch {
    return `the server answered ${response.status}`;
  }
}

const checkFile = () => (state.check ? state.model.check : null);

// The check model's session (loaded once); null, with a warning, when it cannot be used: the
// page then flags answers by the one model's confidence.
async function checkSession(file) {
  if (!state.checks.has(file)) {
    try {
      const response = await fetch(`/models/${encodeURIComponent(file)}`);
      if (!response.ok) throw new Error(await errorText(response));
      state.checks.set(file, await state.ort.InferenceSession.create(
        new Uint8Array(await response.arrayBuffer()),
        { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
    } catch (error) {
      console.warn(`the check model ${file} did not load: ${error.message}`);
      return null;
    }
  }
  return state.checks.get(file);
}

// The model's inside file (its hidden layers as outputs) and their list; null, with a warning,
// when it cannot be used: the page then shows no feature maps.
async function insideSession(model) {
  try {
    const response = await fetch(model.inside);
    if (!response.ok) throw new Error(await errorText(response));
    const session = await state.ort.InferenceSession.create(
      new Uint8Array(await response.arrayBuffer()),
      { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    return { session, layers: model.inside_layers };
  } catch (error) {
    console.warn(`the inside of ${model.file} did not load: ${error.message}`);
    return null;
  }
}

async function loadModel(file) {
  await window.digitApp.whenIdle();
  const model = state.models.find((m) => m.file === file);
  state.session = null;
  state.check = null;
  state.inside = null;
  state.model = model;
  window.digitApp.result = null;
  renderBars(null);
  show("loading", `Loading ${file}…`);
  try {
    const response = await fetch(`/models/${encodeURIComponent(file)}`);
    if (!response.ok) throw new Error(await errorText(response));
    const bytes = new Uint8Array(await response.arrayBuffer());
    const session = await state.ort.InferenceSession.create(bytes,
      { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    const check = model.check ? await checkSession(model.check) : null;
    const inside = model.inside ? await insideSession(model) : null;
    if (state.model !== model) return; // another model was picked meanwhile
    state.session = session;
    state.check = check;
    state.inside = inside;
    state.sessions.set(model.file, session);
  } catch (error) {
    if (state.model === model) show("error", `Cannot use ${file}: ${error.message}`);
    return;
  }
  show("ready", numberMode.checked ? "Write a number in the strip." : "Draw a digit in the box.");
  state.version += 1; // the new model reads the drawing afresh
  classifySoon();
}

numberMode.addEventListener("change", async () => {
  await window.digitApp.whenIdle();
  [pad.width, pad.height] = PAD_SIZES[numberMode.checked ? "number" : "digit"];
  document.body.dataset.mode = numberMode.checked ? "number" : "digit";
  document.getElementById("title").textContent = numberMode.checked ? "Write a number"
    : "Draw a digit";
  state.strokes = [];
  paint();
  classifySoon();
});

function fillPicker(config) {
  picker.replaceChildren(...config.models.map((m) => {
    const option = document.createElement("option");
    option.value = m.file;
    const accuracy = m.test_accuracy == null ? "" : ` (${percent(m.test_accuracy)} on the test set)`;
    option.textContent = m.error ? `${m.name}: unusable, see the server's log` : `${m.name}${accuracy}`;
    option.disabled = Boolean(m.error);
    option.title = m.error || `${m.dataset || "unknown dataset"}: ${m.classes.join(", ")}`;
    return option;
  }));
  picker.value = config.default;
  picker.addEventListener("change", () => loadModel(picker.value));
}

async function start() {
  paint();
  let config;
  try {
    const response = await fetch("/api/config");
    if (!response.ok) throw new Error(await errorText(response));
    config = await response.json();
    configure(config.preprocessing);
    configureSegmentation(config.segmentation);
    state.unsure = config.unsure;
    state.segmentation = config.segmentation;
    renderSeen(null);
  } catch (error) {
    show("error", `The page's server is not answering (${error.message}); start ` +
      "`python -m keras_digits.serve` again and reload.");
    return;
  }
  try {
    state.ort = await import("/ort/ort.wasm.min.mjs");
  } catch (error) {
    show("error", `onnxruntime-web did not load (${error.message}); run \`npm ci\` and restart ` +
      "the server.");
    return;
  }
  state.ort.env.wasm.wasmPaths = "/ort/";
  state.ort.env.wasm.numThreads = 1;
  document.getElementById("runtime").textContent = `onnxruntime-web ${config.onnxruntime_web}`;
  state.models = config.models;
  if (config.verifier) {
    try {
      const response = await fetch(config.verifier);
      if (!response.ok) throw new Error(await errorText(response));
      state.verifier = await state.ort.InferenceSession.create(
        new Uint8Array(await response.arrayBuffer()), { executionProviders: ["wasm"] });
    } catch (error) { // numbers are still cut, as without a verifier
      console.warn(`the one-digit verifier did not load: ${error.message}`);
    }
  }
  fillPicker(config);
  await loadModel(config.default);
}

start();
