// The predict command's preprocessing (keras_digits/imaging: page.py, find_ink.py, normalize.py
// and raster.py), step for step, so a drawing gets the same 28x28 input in the browser as on the
// command line. Images are
// {width, height, data: Float32Array} in row-major order; every resize reproduces Pillow's
// separable BOX / BILINEAR / BICUBIC filters on float images (horizontal pass first, float32
// between), because the Python side uses them. tests/test_serve.py checks both sides agree on
// drawings.

// MNIST's geometry and the thresholds come from the server (keras_digits/core/contract.py, the one
// place they are written): call configure() with /api/config's `preprocessing` before use.
export let BOX;
export let FRAME;
let STROKE_BOX;
let SMALL_CROP;
let MNIST_STROKE_AT_80;
let MIN_CONTRAST;
let PAPER_MARGIN;
let RULE_THICKNESS;
let POLARITY_SIDE;
let BACKGROUND_SIDE;
let BACKGROUND_FILTER;
let DESK;
let SHEET_INK;
let SHEET_CONVEX;
let FRAME_STRIP_DEPTH;
let FRAME_STRIP_SPAN;
let FRAME_STRIP_GAP;
let FRAME_BOX_MIN;
let FRAME_BOX_DEPTH;
let FRAME_BOX_REACH;

export function configure(constants) {
  ({ BOX, FRAME, STROKE_BOX, SMALL_CROP, MNIST_STROKE_AT_80, MIN_CONTRAST, PAPER_MARGIN,
    RULE_THICKNESS, POLARITY_SIDE, BACKGROUND_SIDE, BACKGROUND_FILTER, DESK, SHEET_INK,
    SHEET_CONVEX, FRAME_STRIP_DEPTH, FRAME_STRIP_SPAN, FRAME_STRIP_GAP, FRAME_BOX_MIN,
    FRAME_BOX_DEPTH, FRAME_BOX_REACH } = constants);
  const missing = Object.entries({ BOX, FRAME, STROKE_BOX, SMALL_CROP, MNIST_STROKE_AT_80,
    MIN_CONTRAST, PAPER_MARGIN, RULE_THICKNESS, POLARITY_SIDE, BACKGROUND_SIDE,
    BACKGROUND_FILTER, DESK, SHEET_INK, SHEET_CONVEX, FRAME_STRIP_DEPTH, FRAME_STRIP_SPAN,
    FRAME_STRIP_GAP, FRAME_BOX_MIN, FRAME_BOX_DEPTH, FRAME_BOX_REACH })
    .filter(([, v]) => typeof v !== "number").map(([k]) => k);
  if (missing.length) throw new Error(`preprocessing constants missing: ${missing.join(", ")}`);
}

const f32 = Math.fround;

export function makeImage(width, height, data) {
  return { width, height, data: data ?? new Float32Array(width * height) };
}

// Python's round(): halves go to the even neighbour.
export function roundHalfEven(x) {
  const down = Math.floor(x);
  const diff = x - down;
  if (diff > 0.5) return down + 1;
  if (diff < 0.5) return down;
  return down % 2 === 0 ? down : down + 1;
}

const boxFilter = (x) => (x > -0.5 && x <= 0.5 ? 1 : 0);
const bilinearFilter = (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0);
// Pillow's cubic kernel (a = -0.5), support 2.
function bicubicFilter(x) {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

// Per output pixel: the first input index and the normalised weights (Pillow's precompute_coeffs).
function coefficients(inSize, outSize, filter, filterSupport) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterSupport * filterScale;
  const taps = [];
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const first = Math.max(0, Math.trunc(center - support + 0.5));
    const end = Math.min(inSize, Math.trunc(center + support + 0.5));
    const weights = [];
    let total = 0;
    for (let x = first; x < end; x++) {
      const w = filter((x - center + 0.5) / filterScale);
      weights.push(w);
      total += w;
    }
    taps.push({ first, weights: total !== 0 ? weights.map((w) => w / total) : weights });
  }
  return taps;
}

// Resize to (width, height): box averaging when shrinking keeps thin strokes, bilinear otherwise;
// `cubic` enlarges with the cubic filter, clipped to the input's range (raster.resize).
export function resize(image, width, height, cubic = false) {
  if (width === image.width && height === image.height) {
    return makeImage(width, height, image.data.slice());
  }
  const shrinking = width <= image.width && height <= image.height;
  if (cubic && !shrinking) {
    const low = minOf(image.data);
    const high = maxOf(image.data);
    const out = resizeWith(image, width, height, bicubicFilter, 2.0);
    return makeImage(width, height, out.data.map((v) => Math.min(Math.max(v, low), high)));
  }
  const [filter, support] = shrinking ? [boxFilter, 0.5] : [bilinearFilter, 1.0];
  return resizeWith(image, width, height, filter, support);
}

function resizeWith(image, width, height, filter, support) {
  const vertical = coefficients(image.height, height, filter, support);
  let source = image;
  let rowOffset = 0;
  if (width !== image.width) {
    // Only the rows the vertical pass reads, as Pillow does.
    const firstRow = vertical[0].first;
    const last = vertical[height - 1];
    const rows = last.first + last.weights.length - firstRow;
    const horizontal = coefficients(image.width, width, filter, support);
    const out = makeImage(width, rows);
    for (let y = 0; y < rows; y++) {
      const base = (y + firstRow) * image.width;
      for (let x = 0; x < width; x++) {
        const { first, weights } = horizontal[x];
        let sum = 0;
        for (let k = 0; k < weights.length; k++) sum += image.data[base + first + k] * weights[k];
        out.data[y * width + x] = sum;
      }
    }
    source = out;
    rowOffset = firstRow;
  }
  if (height === image.height) return source;
  const out = makeImage(width, height);
  for (let y = 0; y < height; y++) {
    const { first, weights } = vertical[y];
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (let k = 0; k < weights.length; k++) {
        sum += source.data[(first - rowOffset + k) * width + x] * weights[k];
      }
      out.data[y * width + x] = sum;
    }
  }
  return out;
}

// Maximum over a size x size window, edges replicated (Pillow's MaxFilter): one pass along
// the rows and one down the columns, each over a line extended by its edge values.
export function maxFilter(image, size) {
  const { width, height, data } = image;
  const half = size >> 1;
  const line = new Float32Array(Math.max(width, height) + 2 * half);
  const result = new Float32Array(Math.max(width, height));
  const rows = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    slidingMax(extendLine(line, data, y * width, 1, width, half), width, size, result);
    rows.set(result.subarray(0, width), y * width);
  }
  const out = new Float32Array(width * height);
  for (let x = 0; x < width; x++) {
    slidingMax(extendLine(line, rows, x, width, height, half), height, size, result);
    for (let y = 0; y < height; y++) out[y * width + x] = result[y];
  }
  return makeImage(width, height, out);
}

// Minimum over the same window (Pillow's MinFilter), as the maximum of the negated image.
export function minFilter(image, size) {
  const negated = (values) => {
    const out = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = -values[i];
    return out;
  };
  const { width, height, data } = maxFilter(makeImage(image.width, image.height,
    negated(image.data)), size);
  return makeImage(width, height, negated(data));
}

function extendLine(line, data, start, stride, n, half) {
  const first = data[start];
  const last = data[start + (n - 1) * stride];
  for (let i = 0; i < half; i++) {
    line[i] = first;
    line[half + n + i] = last;
  }
  for (let i = 0; i < n; i++) line[half + i] = data[start + i * stride];
  return line;
}

function slidingMax(line, n, size, out) {
  for (let i = 0; i < n; i++) {
    let best = line[i];
    for (let k = 1; k < size; k++) if (line[i + k] > best) best = line[i + k];
    out[i] = best;
  }
}

// Pixels that count as ink (the thresholds predict uses for crops, stroke checks and blanks).
function countInk(data) {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > 0.5) n += 1;
  return n;
}

// The values above `floor`, in order.
function above(data, floor) {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i] > floor) n += 1;
  const out = new Float32Array(n);
  for (let i = 0, j = 0; i < data.length; i++) if (data[i] > floor) out[j++] = data[i];
  return out;
}

function minOf(data) {
  let best = Infinity;
  for (let i = 0; i < data.length; i++) if (data[i] < best) best = data[i];
  return best;
}

function maxOf(data) {
  let best = -Infinity;
  for (let i = 0; i < data.length; i++) if (data[i] > best) best = data[i];
  return best;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// numpy's default (linear) percentile.
function percentile(values, q) {
  const sorted = Float64Array.from(values).sort();
  const position = (q / 100) * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
}

// Otsu's threshold over 256 bins of values in [0, 1].
export function otsu(values) {
  const hist = new Float64Array(256);
  for (let i = 0; i < values.length; i++) hist[Math.min(255, Math.floor(values[i] * 256))] += 1;
  let weight = 0;
  let mass = 0;
  const weights = new Float64Array(256);
  const masses = new Float64Array(256);
  for (let i = 0; i < 256; i++) {
    weight += hist[i];
    mass += hist[i] * ((i + 0.5) / 256);
    weights[i] = weight;
    masses[i] = mass;
  }
  let best = -Infinity;
  let bestIndex = 0;
  for (let i = 0; i < 256; i++) {
    const meanLow = masses[i] / weights[i];
    const meanHigh = (mass - masses[i]) / (weight - weights[i]);
    const between = weights[i] * (weight - weights[i]) * (meanLow - meanHigh) ** 2;
    if (between > best) {
      best = between;
      bestIndex = i;
    }
  }
  return (bestIndex + 0.5) / 256;
}

// RGBA bytes (a canvas's ImageData) to float32 luminance in [0, 1], alpha laid on a background
// that contrasts with the ink, as _to_gray does.
export function rgbaToGray(rgba, width, height) {
  const gray = makeImage(width, height);
  const alpha = new Float32Array(width * height);
  let minAlpha = 1;
  for (let i = 0; i < width * height; i++) {
    const r = f32(rgba[4 * i] / 255);
    const g = f32(rgba[4 * i + 1] / 255);
    const b = f32(rgba[4 * i + 2] / 255);
    gray.data[i] = r * f32(0.299) + g * f32(0.587) + b * f32(0.114);
    alpha[i] = f32(rgba[4 * i + 3] / 255);
    minAlpha = Math.min(minAlpha, alpha[i]);
  }
  if (minAlpha < 0.98) {
    let sum = 0;
    let count = 0;
    for (let i = 0; i < alpha.length; i++) {
      if (alpha[i] > 0.5) {
        sum += gray.data[i];
        count += 1;
      }
    }
    const background = count > 0 && sum / count < 0.5 ? 1 : 0;
    for (let i = 0; i < alpha.length; i++) {
      gray.data[i] = gray.data[i] * alpha[i] + background * (1 - alpha[i]);
    }
  }
  return gray;
}

// Which rows (or columns) are page rules: nearly full cover, thin, and at least two of them
// (paper.rule_lines).
function ruleLines(cover, thicknessLimit) {
  const runs = [];
  let start = -1;
  for (let i = 0; i <= cover.length; i++) {
    const crossing = i < cover.length && cover[i] > 0.85;
    if (crossing && start < 0) start = i;
    if (!crossing && start >= 0) {
      if (i - start <= thicknessLimit) runs.push([start, i]);
      start = -1;
    }
  }
  const rules = new Uint8Array(cover.length);
  if (runs.length >= 2) for (const [a, b] of runs) rules.fill(1, a, b);
  return rules;
}

// The values on an image's outer edge: top row, bottom row, left and right columns (corners
// twice; raster.frame).
function frame(data, width, height) {
  const edge = [...data.subarray(0, width), ...data.subarray((height - 1) * width)];
  for (let y = 0; y < height; y++) edge.push(data[y * width], data[y * width + width - 1]);
  return edge;
}

// Which pixels of an ink map (the image's own frame, no margin) are a strip of desk, shadow
// or scanner edge along the frame rather than writing (paper.frame_strips): shallow ink
// on the frame, running along a side, with the writing clear of that side and of every edge.
export function frameStrips(ink, low) {
  const { width, height, data } = ink;
  const clear = new Uint8Array(width * height);
  const visible = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) visible[i] = data[i] > low ? 1 : 0;
  if (Math.max(height, width) < 2 * BACKGROUND_SIDE || !frame(visible, width, height).includes(1)) {
    return clear;
  }
  const { labels } = labelComponents({ width, height, data: visible });
  const onFrame = new Set(frame(labels, width, height));
  onFrame.delete(0);
  const toFrame = (y, x) => Math.min(y, height - 1 - y, x, width - 1 - x);
  const depths = new Map([...onFrame].map((label) => [label, 0]));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const label = labels[y * width + x];
      if (depths.has(label)) depths.set(label, Math.max(depths.get(label), toFrame(y, x)));
    }
  }
  const shorter = Math.min(height, width);
  const strips = [];
  for (const [label, depth] of depths) {
    if (depth >= FRAME_STRIP_DEPTH * shorter) continue;
    const reach = depth + 1;
    const top = new Uint8Array(width);
    const bottom = new Uint8Array(width);
    const left = new Uint8Array(height);
    const right = new Uint8Array(height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (labels[y * width + x] !== label) continue;
        if (y < reach) top[x] = 1;
        if (y >= height - reach) bottom[x] = 1;
        if (x < reach) left[y] = 1;
        if (x >= width - reach) right[y] = 1;
      }
    }
    const share = (cover) => cover.reduce((a, b) => a + b, 0) / cover.length;
    const sides = [["top", top], ["bottom", bottom], ["left", left], ["right", right]]
      .filter(([, cover]) => share(cover) >= FRAME_STRIP_SPAN).map(([side]) => side);
    if (sides.length) strips.push([label, depth, sides]);
  }
  if (!strips.length) return clear;
  const stripLabels = new Set(strips.map(([label]) => label));
  const writing = Uint8Array.from(visible, (v, i) => (v && !stripLabels.has(labels[i]) ? 1 : 0));
  if (!writing.includes(1) || frame(writing, width, height).includes(1)) return clear;
  // The writing's box.
  let [top, bottom, left, right] = [height, -1, width, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!writing[y * width + x]) continue;
      [top, bottom] = [Math.min(top, y), Math.max(bottom, y)];
      [left, right] = [Math.min(left, x), Math.max(right, x)];
    }
  }
  for (const [label, depth, sides] of strips) {
    const band = depth + 1 + Math.max(depth + 1, Math.floor(FRAME_STRIP_GAP * shorter));
    const near = { top: top < band, bottom: bottom >= height - band, left: left < band,
      right: right >= width - band };
    if (!sides.some((side) => near[side])) {
      for (let i = 0; i < labels.length; i++) if (labels[i] === label) clear[i] = 1;
    }
  }
  return clear;
}

// Mend the strokes that crossed removed rules: a rule's pixels get the fainter of the ink
// just before and just after it, where both are ink (paper.bridge_rules). `index(line, i)`
// is the pixel i along rule line `line`, of `span` pixels.
function bridgeRules(flat, rules, span, index, threshold) {
  let start = -1;
  for (let line = 0; line <= rules.length; line++) {
    const on = line < rules.length && rules[line];
    if (on && start < 0) start = line;
    if (!on && start >= 0) {
      if (start > 0 && line < rules.length) {
        for (let i = 0; i < span; i++) {
          const across = Math.min(flat[index(start - 1, i)], flat[index(line, i)]);
          for (let k = start; k < line; k++) flat[index(k, i)] = across > threshold ? across : 0;
        }
      }
      start = -1;
    }
  }
}

// 8-connected components of a mask {width, height, data: Uint8Array}: runs of ones per row
// joined with the runs they touch above (raster.label_components).
export function labelComponents(mask) {
  const { width, height, data } = mask;
  const parent = [];
  const find = (i) => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  const runsByRow = [];
  for (let y = 0; y < height; y++) {
    const runs = [];
    let start = -1;
    for (let x = 0; x <= width; x++) {
      const on = x < width && data[y * width + x];
      if (on && start < 0) start = x;
      if (!on && start >= 0) {
        parent.push(parent.length);
        runs.push([start, x, parent.length - 1]);
        start = -1;
      }
    }
    if (runsByRow.length) {
      const above = runsByRow[runsByRow.length - 1];
      let j = 0;
      for (const [s, e, id] of runs) {
        while (j < above.length && above[j][1] < s) j += 1;
        for (let k = j; k < above.length && above[k][0] <= e; k++) {
          const a = find(id);
          const b = find(above[k][2]);
          if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
        }
      }
    }
    runsByRow.push(runs);
  }
  const roots = new Map();
  const labels = new Int32Array(width * height);
  runsByRow.forEach((runs, y) => {
    for (const [s, e, id] of runs) {
      const root = find(id);
      if (!roots.has(root)) roots.set(root, roots.size + 1);
      labels.fill(roots.get(root), y * width + s, y * width + e);
    }
  });
  return { labels, count: roots.size };
}

// Whether the paper is lighter than the ink, from the light share of the border; in a tight
// crop the ink is the tone in fewer pieces, judged at POLARITY_SIDE (preprocess._paper_is_light).
function paperIsLight(gray, lightBorder) {
  if (!(lightBorder > 1 / 3 && lightBorder < 2 / 3)) return lightBorder >= 2 / 3;
  const { width, height } = gray;
  const scale = Math.min(1, POLARITY_SIDE / Math.max(height, width));
  const small = resize(gray, Math.max(1, roundHalfEven(width * scale)),
    Math.max(1, roundHalfEven(height * scale)));
  const mid = f32(f32(minOf(small.data) + maxOf(small.data)) / 2);
  const mask = (light) => ({ width: small.width, height: small.height,
    data: Uint8Array.from(small.data, (v) => ((v > mid) === light ? 1 : 0)) });
  const lightPieces = labelComponents(mask(true)).count;
  const darkPieces = labelComponents(mask(false)).count;
  if (lightPieces === darkPieces) return lightBorder > 0.5;
  return darkPieces < lightPieces;
}

function gcd(a, b) {
  let [x, y] = [Math.abs(a), Math.abs(b)];
  while (y) [x, y] = [y, x % y];
  return x;
}

// How many pixels the convex hull of a mask's pixels holds: Pick's theorem on the hull of their
// centres (raster.hull_pixels).
function hullPixels(mask) {
  const { width, height, data } = mask;
  const seen = new Set();
  const points = [];
  for (let y = 0; y < height; y++) {
    let first = -1;
    let last = -1;
    for (let x = 0; x < width; x++) {
      if (data[y * width + x]) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first < 0) continue;
    for (const x of [first, last]) {
      if (!seen.has(x * height + y)) {
        seen.add(x * height + y);
        points.push([x, y]);
      }
    }
  }
  points.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  const chain = (ordered) => {
    const out = [];
    for (const p of ordered) {
      while (out.length >= 2) {
        const [a, b] = [out[out.length - 2], out[out.length - 1]];
        if ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) > 0) break;
        out.pop();
      }
      out.push(p);
    }
    return out.slice(0, -1);
  };
  const hull = points.length > 1 ? chain(points).concat(chain(points.slice().reverse())) : points;
  let twice = 0;
  let boundary = 0;
  hull.forEach(([x0, y0], i) => {
    const [x1, y1] = hull[(i + 1) % hull.length];
    twice += x0 * y1 - x1 * y0;
    boundary += gcd(x1 - x0, y1 - y0);
  });
  return Math.abs(twice) / 2 + boundary / 2 + 1;
}

// The grey image with the desk around a photographed sheet of paper painted in the paper's tone;
// any other image unchanged (paper.without_desk).
export function withoutDesk(gray) {
  const { width, height } = gray;
  if (Math.max(height, width) < 2 * BACKGROUND_SIDE) return gray;  // a scan or a crop
  const scale = BACKGROUND_SIDE / Math.max(height, width);
  const small = resize(gray, Math.max(1, roundHalfEven(width * scale)),
    Math.max(1, roundHalfEven(height * scale)));
  const low = minOf(small.data);
  const high = maxOf(small.data);
  if (high - low < MIN_CONTRAST) return gray;
  const span = f32(high - low);
  const level = otsu(small.data.map((v) => f32(f32(v - low) / span)));
  const threshold = f32(low + level * (high - low));
  const n = small.data.length;
  const light = Uint8Array.from(small.data, (v) => (v > threshold ? 1 : 0));
  const lit = labelComponents({ width: small.width, height: small.height, data: light });
  if (lit.count === 0) return gray;
  const sizes = new Int32Array(lit.count + 1);
  for (const label of lit.labels) sizes[label] += 1;
  let biggest = 1;
  for (let k = 2; k <= lit.count; k++) if (sizes[k] > sizes[biggest]) biggest = k;
  const paper = Uint8Array.from(lit.labels, (label) => (label === biggest ? 1 : 0));
  const rest = labelComponents({ width: small.width, height: small.height,
    data: paper.map((v) => 1 - v) }).labels;
  const onEdge = new Set(frame(rest, small.width, small.height));
  onEdge.delete(0);
  const desk = rest.map((label) => (onEdge.has(label) ? 1 : 0));
  let deskCount = 0;
  let deskLight = 0;
  let sheetCount = 0;
  const paperTones = [];
  const deskTones = [];
  const markTones = [];
  for (let i = 0; i < n; i++) {
    if (desk[i]) {
      deskCount += 1;
      deskLight += light[i];
      deskTones.push(small.data[i]);
    } else {
      sheetCount += 1;
      if (!light[i]) markTones.push(small.data[i]);
    }
    if (paper[i]) paperTones.push(small.data[i]);
  }
  const marks = markTones.length;
  if (!(deskCount / n >= DESK && deskLight <= 0.05 * deskCount
    && 0.005 * sheetCount <= marks && marks <= SHEET_INK * sheetCount)) return gray;
  // The marks are pen strokes, thin at this size (the holes of a bold white digit on black are
  // not), the desk far darker than the paper (not a shade of uneven light on one sheet), and
  // the sheet straight-edged.
  const sheet = { width: small.width, height: small.height, data: desk.map((v) => 1 - v) };
  const markMask = Float32Array.from(light, (v, i) => (sheet.data[i] && !v ? 1 : 0));
  const cores = countInk(minFilter(makeImage(small.width, small.height, markMask), 3).data);
  const paperTone = f32(median(paperTones));
  if (cores > 0.25 * marks
    || paperTone - f32(median(deskTones)) < 0.4 * (paperTone - f32(median(markTones)))
    || sheetCount < SHEET_CONVEX * hullPixels(sheet)) return gray;
  // The sheet's rim, a pixel in from its edge at this size, goes too: its shadow is no ink.
  const inside = minFilter(makeImage(small.width, small.height, Float32Array.from(sheet.data)), 3);
  const keep = resize(inside, width, height);
  return makeImage(width, height, gray.data.map((v, i) => (keep.data[i] > 0.99 ? v : paperTone)));
}

// The inside of a box drawn in `tone` (dark: true) as [top, bottom, left, right), ends
// exclusive, or null (paper._box_lines).
function boxLines(gray, mid, tone, deepest) {
  const { width, height, data } = gray;
  const at = (y, x) => (data[y * width + x] < mid) === tone;
  // The share of `tone` along row (or column) `k` from `first` to `last`, both included.
  const share = (isRow, k, first, last) => {
    let n = 0;
    for (let i = first; i <= last; i++) n += isRow ? at(k, i) : at(i, k);
    return n / (last - first + 1);
  };
  const found = [];
  for (const isRow of [true, false]) {
    const size = isRow ? height : width;
    const across = (isRow ? width : height) - 1;
    const reach = Math.floor(FRAME_BOX_REACH * size);
    let near = -1;
    let far = -1;
    for (let k = 0; k < reach; k++) {
      if (near < 0 && share(isRow, k, 0, across) >= 0.5) near = k;
      if (share(isRow, size - reach + k, 0, across) >= 0.5) far = size - reach + k;
    }
    if (near < 0 || far < 0) return null;
    found.push(near, far);
  }
  const [top, bottom, left, right] = found;
  const sides = [[true, top, 1, left, right], [true, bottom, -1, left, right],
    [false, left, 1, top, bottom], [false, right, -1, top, bottom]];
  const inner = [];
  for (const [isRow, start, step, first, last] of sides) {
    let depth = 0;
    while (depth < deepest && share(isRow, start + step * depth, first, last) >= 0.9) depth += 1;
    if (depth === 0 || share(isRow, start + step * depth, first, last) > 0.5) return null;
    inner.push(start + step * depth);
  }
  const [topIn, bottomIn, leftIn, rightIn] = inner;
  if (bottomIn <= topIn || rightIn <= leftIn) return null;
  return [topIn, bottomIn + 1, leftIn, rightIn + 1];
}

// The grey image with a box drawn around the writing (a form's field), and all outside it,
// painted in the tone inside it (paper.without_frame_box).
export function withoutFrameBox(gray) {
  const { width, height, data } = gray;
  const low = minOf(data);
  const high = maxOf(data);
  if (Math.min(width, height) < FRAME_BOX_MIN || high - low < MIN_CONTRAST) return gray;
  const mid = f32((low + high) / 2);
  const deepest = Math.max(1, Math.floor(FRAME_BOX_DEPTH * Math.min(width, height)));
  for (const tone of [true, false]) {  // the box dark (true) or light, the paper the other
    const box = boxLines(gray, mid, tone, deepest);
    if (box === null) continue;
    const [top, bottom, left, right] = box;
    // Mostly paper inside, and no more lines across it (squared paper is no box).
    const rows = new Float64Array(bottom - top);
    const cols = new Float64Array(right - left);
    const paperTones = [];
    let inBox = 0;
    for (let y = top; y < bottom; y++) {
      for (let x = left; x < right; x++) {
        const v = data[y * width + x];
        if ((v < mid) === tone) {
          inBox += 1;
          rows[y - top] += 1;
          cols[x - left] += 1;
        } else {
          paperTones.push(v);
        }
      }
    }
    const crossed = rows.some((n) => n / (right - left) >= 0.9)
      || cols.some((n) => n / (bottom - top) >= 0.9);
    if (inBox >= 0.5 * (inBox + paperTones.length) || crossed) continue;
    const paperTone = f32(median(paperTones));
    return makeImage(width, height, data.map((v, i) => {
      const y = Math.floor(i / width);
      const x = i % width;
      return y >= top && y < bottom && x >= left && x < right ? v : paperTone;
    }));
  }
  return gray;
}

// Ink strength in [0, 1] with polarity fixed and background removed, on the image with a margin
// of paper around it (preprocess.ink_map).
export function inkMap(grayImage) {
  const { width, height } = grayImage;
  let gray = withoutDesk(withoutFrameBox(grayImage));
  const border = frame(gray.data, width, height);
  const mid = f32(f32(minOf(gray.data) + maxOf(gray.data)) / 2);
  const lightBorder = border.filter((v) => v > mid).length / border.length;
  const paperLight = paperIsLight(gray, lightBorder);
  // Both tones are on the border unless it is all one, and then that tone is the paper.
  let paperTone = f32(median(border.filter((v) => (v > mid) === paperLight)));
  if (paperLight) {  // dark on light: flip to MNIST's white ink on black
    gray = makeImage(width, height, gray.data.map((v) => 1 - v));
    paperTone = f32(1 - paperTone);
  }
  const margin = Math.floor(Math.max(height, width) / PAPER_MARGIN);
  gray = pad(gray, margin, paperTone);
  const paddedWidth = gray.width;
  const paddedHeight = gray.height;
  const scale = Math.min(1, BACKGROUND_SIDE / Math.max(paddedHeight, paddedWidth));
  const small = resize(gray, Math.max(1, roundHalfEven(paddedWidth * scale)),
    Math.max(1, roundHalfEven(paddedHeight * scale)));
  const background = resize(maxFilter(minFilter(small, BACKGROUND_FILTER), BACKGROUND_FILTER),
    paddedWidth, paddedHeight);
  const flat = new Float32Array(paddedWidth * paddedHeight);
  for (let i = 0; i < flat.length; i++) {
    flat[i] = Math.min(1, Math.max(0, gray.data[i] - background.data[i]));
  }
  const peak = maxOf(flat);
  if (peak < MIN_CONTRAST) return makeImage(paddedWidth, paddedHeight);
  const scaled = new Float32Array(flat.length);
  for (let i = 0; i < flat.length; i++) scaled[i] = flat[i] / peak;
  const threshold = Math.max(f32(otsu(scaled) * peak), MIN_CONTRAST / 2);
  const low = threshold / 2;
  // Ruled or squared paper: drop thin lines of visible ink that cross nearly the whole page.
  const rowCover = new Float64Array(height);
  const colCover = new Float64Array(width);
  const at = (y, x) => (y + margin) * paddedWidth + x + margin;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (flat[at(y, x)] > low) {
        rowCover[y] += 1;
        colCover[x] += 1;
      }
    }
  }
  const rows = ruleLines(rowCover.map((v) => v / width), RULE_THICKNESS * height);
  const cols = ruleLines(colCover.map((v) => v / height), RULE_THICKNESS * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (rows[y] || cols[x]) flat[at(y, x)] = 0;
    }
  }
  bridgeRules(flat, rows, width, (line, i) => at(line, i), threshold);
  bridgeRules(flat, cols, height, (line, i) => at(i, line), threshold);
  const inner = makeImage(width, height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) inner.data[y * width + x] = flat[at(y, x)];
  }
  const strips = frameStrips(inner, low);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if (strips[y * width + x]) flat[at(y, x)] = 0;
  }
  const strokes = above(flat, threshold);
  if (strokes.length === 0) return makeImage(paddedWidth, paddedHeight);
  const strong = f32(percentile(strokes, 90));
  const lowF = f32(low);
  const span = f32(Math.max(strong - low, 1e-6));
  const ink = makeImage(paddedWidth, paddedHeight);
  for (let i = 0; i < flat.length; i++) {
    ink.data[i] = Math.min(1, Math.max(0, f32(flat[i] - lowF) / span));
  }
  return ink;
}

// Mean stroke width: ink area over half the outline length.
export function strokeWidth(image) {
  const { width, height, data } = image;
  let area = 0;
  let edges = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const on = data[y * width + x] > 0.5;
      area += on;
      if (x + 1 < width && on !== data[y * width + x + 1] > 0.5) edges += 1;
      if (y + 1 < height && on !== data[(y + 1) * width + x] > 0.5) edges += 1;
      if (on) edges += (x === 0) + (x === width - 1) + (y === 0) + (y === height - 1);
    }
  }
  return area === 0 ? 0 : (2 * area) / Math.max(edges, 1);
}

function crop(image, top, bottom, left, right) {
  const out = makeImage(right - left, bottom - top);
  for (let y = top; y < bottom; y++) {
    out.data.set(image.data.subarray(y * image.width + left, y * image.width + right),
      (y - top) * out.width);
  }
  return out;
}

function pad(image, margin, value = 0) {
  const out = makeImage(image.width + 2 * margin, image.height + 2 * margin);
  if (value !== 0) out.data.fill(value);
  for (let y = 0; y < image.height; y++) {
    out.data.set(image.data.subarray(y * image.width, (y + 1) * image.width),
      (y + margin) * out.width + margin);
  }
  return out;
}

// [left, top, right, bottom] of the pixels above 0.5 (a mask's ones).
export function inkBox(image) {
  const { width, height, data } = image;
  let top = height;
  let bottom = 0;
  let left = width;
  let right = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[y * width + x] > 0.5) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y + 1);
        left = Math.min(left, x);
        right = Math.max(right, x + 1);
      }
    }
  }
  return [left, top, right, bottom];
}

// The bounding box of the ink, faint anti-aliased edges included, ignoring specks.
function cropToInk(ink) {
  const { width, height, data } = ink;
  const mask = makeImage(width, height);
  for (let i = 0; i < data.length; i++) mask.data[i] = data[i] > 0.5 ? 1 : 0;
  let [left, top, right, bottom] = inkBox(mask);
  // Opening the mask (3x3 minimum, then maximum) changes nothing more than two pixels from its
  // ink, so it runs on that window of the mask alone.
  if (right > left) {
    const [x0, y0] = [Math.max(0, left - 2), Math.max(0, top - 2)];
    const near = crop(mask, y0, Math.min(height, bottom + 2), x0, Math.min(width, right + 2));
    const opened = maxFilter(minFilter(near, 3), 3);
    const kept = countInk(opened.data);
    if (kept >= 0.7 * countInk(near.data)) {
      const box = inkBox(opened);
      [left, top, right, bottom] = [box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0];
    }
  }
  const faint = (y, x) => data[y * width + x] > 0.1;
  const rowHas = (y, x0, x1) => { for (let x = x0; x < x1; x++) if (faint(y, x)) return true; return false; };
  const colHas = (x, y0, y1) => { for (let y = y0; y < y1; y++) if (faint(y, x)) return true; return false; };
  while (top > 0 && rowHas(top - 1, left, right)) top -= 1;
  while (bottom < height && rowHas(bottom, left, right)) bottom += 1;
  while (left > 0 && colHas(left - 1, top, bottom)) left -= 1;
  while (right < width && colHas(right, top, bottom)) right += 1;
  return crop(ink, top, bottom, left, right);
}

function fitBox(image, box, cubic = false) {
  const factor = box / Math.max(image.height, image.width);
  return resize(image, Math.max(1, roundHalfEven(image.width * factor)),
    Math.max(1, roundHalfEven(image.height * factor)), cubic);
}

// Crop, normalise stroke width, scale into the 20-pixel box and centre by mass in 28x28.
export function mnistStyle(ink) {
  const cropped = cropToInk(ink);
  let digit = fitBox(cropped, STROKE_BOX, Math.max(cropped.width, cropped.height) < SMALL_CROP);
  const width = strokeWidth(digit);
  if (width > 0 && width < 0.6 * MNIST_STROKE_AT_80) {
    const grow = roundHalfEven(MNIST_STROKE_AT_80 - width) | 1;
    digit = maxFilter(pad(digit, grow), grow);
  } else if (width > 1.5 * MNIST_STROKE_AT_80) {
    const shrink = roundHalfEven((width - MNIST_STROKE_AT_80) / 2) | 1;
    const thinner = minFilter(digit, shrink);
    if (countInk(thinner.data) > 0.2 * countInk(digit.data)) digit = thinner;
  } else if (Math.max(cropped.width, cropped.height) >= STROKE_BOX) {
    digit = cropped;  // a small crop keeps its smoothed 80-pixel version (preprocess.mnist_style)
  }
  digit = fitBox(digit, BOX);
  const peak = Math.max(maxOf(digit.data), 1e-6);
  digit = makeImage(digit.width, digit.height, digit.data.map((v) => v / peak));
  let total = 0;
  let sumY = 0;
  let sumX = 0;
  for (let y = 0; y < digit.height; y++) {
    for (let x = 0; x < digit.width; x++) {
      const v = digit.data[y * digit.width + x];
      total += v;
      sumY += v * y;
      sumX += v * x;
    }
  }
  const clip = (v, hi) => Math.min(Math.max(v, 0), hi);
  const top = clip(roundHalfEven(FRAME / 2 - 0.5 - sumY / total), FRAME - digit.height);
  const left = clip(roundHalfEven(FRAME / 2 - 0.5 - sumX / total), FRAME - digit.width);
  const frame = new Float32Array(FRAME * FRAME);
  for (let y = 0; y < digit.height; y++) {
    for (let x = 0; x < digit.width; x++) {
      frame[(top + y) * FRAME + left + x] = digit.data[y * digit.width + x];
    }
  }
  return frame;
}

// From a grey image to the model's input, as predict's load_digit: 784 float32 values in 0-255,
// white on black, or null when there is no ink to read (an empty canvas).
export function hasInk(ink) {
  return maxOf(ink.data) >= 0.5 && countInk(ink.data) >= 3;
}

export function grayToPixels(gray) {
  const ink = inkMap(gray);
  if (!hasInk(ink)) return null;
  return mnistStyle(ink).map((v) => v * 255);
}

