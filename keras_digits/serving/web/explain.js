// Why a model gave its answer, computed in the browser as `keras_digits.explain` computes it
// (reading/explain.py): occlusion evidence maps over the 28x28 input, and the most active
// feature maps of a model's "inside" file (deploy/inside.py). No DOM here: tests run it in Node.

export const PATCH = 3; // explain.PATCH: the square of paper laid over the digit
export const COARSE = { patch: 4, stride: 4 }; // a first map at a sixteenth of the runs
const EPSILON = 1e-7; // explain.EPSILON: probabilities are clipped to this before their log
const SIZE = 28;

const logOdds = (p, answer, rival) =>
  Math.log(Math.max(p[answer], EPSILON)) - Math.log(Math.max(p[rival], EPSILON));

// explain.occluded: the positions (top, left) where a patch x patch square, stepped by `stride`,
// covers some ink, and the input with paper laid over each.
export function occluded(pixels, patch = PATCH, stride = 1) {
  const positions = [];
  for (let y = 0; y + patch <= SIZE; y += stride) {
    for (let x = 0; x + patch <= SIZE; x += stride) {
      let ink = false;
      for (let dy = 0; dy < patch && !ink; dy++) {
        for (let dx = 0; dx < patch && !ink; dx++) ink = pixels[(y + dy) * SIZE + x + dx] > 0;
      }
      if (ink) positions.push([y, x]);
    }
  }
  const copies = positions.map(([y, x]) => {
    const copy = Float32Array.from(pixels);
    for (let dy = 0; dy < patch; dy++) copy.fill(0, (y + dy) * SIZE + x, (y + dy) * SIZE + x + patch);
    return copy;
  });
  return { positions, copies };
}

// explain.evidence: each square's change in the log-odds of the answer against the runner-up,
// shared among the ink pixels it covered in proportion to their ink. `classify` maps a list of
// 28x28 inputs to their probabilities; `probabilities` are the input's own. Runs in chunks of
// `chunk` inputs and gives up (null) as soon as `wanted()` turns false (the drawing changed).
export async function evidenceMap(classify, pixels, probabilities,
  { patch = PATCH, stride = 1, chunk = Infinity, wanted = () => true } = {}) {
  const order = probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const [answer, rival] = [order[0][1], order[1][1]];
  const before = logOdds(probabilities, answer, rival);
  const { positions, copies } = occluded(pixels, patch, stride);
  const map = new Float64Array(SIZE * SIZE);
  for (let start = 0; start < copies.length; start += chunk) {
    if (!wanted()) return null;
    const outputs = await classify(copies.slice(start, start + chunk));
    outputs.forEach((p, k) => {
      const [y, x] = positions[start + k];
      const drop = before - logOdds(p, answer, rival);
      let covered = 0;
      for (let dy = 0; dy < patch; dy++) {
        for (let dx = 0; dx < patch; dx++) covered += pixels[(y + dy) * SIZE + x + dx];
      }
      for (let dy = 0; dy < patch; dy++) {
        for (let dx = 0; dx < patch; dx++) {
          const i = (y + dy) * SIZE + x + dx;
          map[i] += (drop * pixels[i]) / covered;
        }
      }
    });
  }
  return wanted() ? { answer, rival, map } : null;
}

// explain.evidence_rgb: the evidence over a pale copy of the digit, red towards the answer and
// blue towards the runner-up, deeper for more; RGBA bytes for a 28x28 canvas.
export function evidenceRgba(pixels, map) {
  const top = Math.max(1e-12, ...map.map(Math.abs));
  const out = new Uint8ClampedArray(SIZE * SIZE * 4);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const pale = 255 - 0.35 * pixels[i];
    const alpha = Math.abs(map[i]) / top;
    const colour = map[i] >= 0 ? [214, 39, 40] : [31, 119, 180];
    for (let c = 0; c < 3; c++) out[4 * i + c] = pale * (1 - alpha) + colour[c] * alpha;
    out[4 * i + 3] = 255;
  }
  return out;
}

// explain.strongest: the indices of a conv layer's `count` most active channels (by mean),
// strongest first; `values` is one input's (channels, height, width) output, flat.
export function strongestChannels(values, channels, count) {
  const area = values.length / channels;
  const means = Array.from({ length: channels }, (_, c) => {
    let sum = 0;
    for (let i = c * area; i < (c + 1) * area; i++) sum += values[i];
    return [sum / area, c];
  });
  return means.sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, count).map(([, c]) => c);
}
