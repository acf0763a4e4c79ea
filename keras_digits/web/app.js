// The draw-a-digit page: strokes on a canvas -> predict's preprocessing (preprocess.js) ->
// onnxruntime-web on the exported .onnx file -> ten probabilities. Served by keras_digits.serve.
import { canvasToPixels, configure, FRAME } from "/preprocess.js";

// MNIST strokes are about 2 of 28 pixels wide; the pad is 10x larger.
const BRUSH = 18;

const pad = document.getElementById("pad");
const ink = pad.getContext("2d", { willReadFrequently: true });
const seen = document.getElementById("seen").getContext("2d");
const picker = document.getElementById("model-picker");
const message = document.getElementById("message");
const bars = document.getElementById("bars");

const state = {
  ort: null,
  session: null,
  model: null, // the picker entry of the loaded model
  models: [],
  strokes: [], // each a list of [x, y] points, kept for Undo
  drawing: null,
  running: null, // the classification in flight
  again: false, // the drawing changed while classifying
};

// For people and for tests: the latest answer and a way to wait for it.
window.digitApp = {
  result: null,
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
  classifySoon();
});
pad.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  state.drawing.push(padPoint(event));
  paint();
  classifySoon();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    state.drawing = null;
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

async function classify() {
  const { data } = ink.getImageData(0, 0, pad.width, pad.height);
  const pixels = canvasToPixels(data, pad.width, pad.height);
  renderSeen(pixels);
  if (!pixels) {
    window.digitApp.result = null;
    renderBars(null);
    show("ready", "Draw a digit in the box.");
    return;
  }
  const { session, ort, model } = state;
  const input = new ort.Tensor("float32", pixels, [1, FRAME, FRAME, 1]);
  const output = await session.run({ [session.inputNames[0]]: input });
  const probabilities = Array.from(output[session.outputNames[0]].data);
  const best = probabilities.indexOf(Math.max(...probabilities));
  renderBars(probabilities);
  window.digitApp.result = { model: model.file, probabilities, top: best,
    label: model.classes[best], pixels: Array.from(pixels) };
  show("ready", `${model.name} reads ${model.classes[best]} (${percent(probabilities[best])}).`);
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

async function loadModel(file) {
  await window.digitApp.whenIdle();
  const model = state.models.find((m) => m.file === file);
  state.session = null;
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
    if (state.model !== model) return; // another model was picked meanwhile
    state.session = session;
  } catch (error) {
    if (state.model === model) show("error", `Cannot use ${file}: ${error.message}`);
    return;
  }
  show("ready", "Draw a digit in the box.");
  classifySoon();
}

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
  fillPicker(config);
  await loadModel(config.default);
}

start();
