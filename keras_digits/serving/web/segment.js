// The predict command's number splitting (keras_digits/imaging/strokes.py and segment.py), step for
// step, so a number drawn on the page is cut into the same digits as on the command line. Masks
// are {width, height, data: Uint8Array}; ink images are preprocess.js images.
// tests/test_serve.py checks both sides agree. The thresholds come from the server
// (contract.SEGMENTATION).
import { inkBox, labelComponents, makeImage, maxFilter } from "./preprocess.js";

let S = null;

export function configureSegmentation(constants) {
  S = constants;
}

function makeMask(width, height, data) {
  return { width, height, data: data ?? new Uint8Array(width * height) };
}

// numpy's percentile (linear), to the last bit: the same lerp from whichever end is nearer.
function percentile(sorted, q) {
  const position = q * (sorted.length - 1);
  const lo = Math.floor(position);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const t = position - lo;
  const span = sorted[hi] - sorted[lo];
  return t >= 0.5 ? sorted[hi] - span * (1 - t) : sorted[lo] + span * t;
}

// The ink map with each faint mark the size of a digit scaled up to full ink
// (strokes.even_out): a light or thin digit beside bold ones keeps its strokes whole.
export function evenOut(ink) {
  const { width, height } = ink;
  const visible = makeMask(width, height, Uint8Array.from(ink.data, (v) => (v > 0 ? 1 : 0)));
  const { labels, count } = labelComponents(visible);
  if (count < 2) return ink;
  const values = Array.from({ length: count + 1 }, () => []);
  labels.forEach((label, i) => label && values[label].push(ink.data[i]));
  const heights = heightsOf(labels, width, count);
  const tallest = Math.max(...heights.slice(1));
  let out = ink;
  for (let label = 1; label <= count; label++) {
    if (heights[label] < S.FRAGMENT_HEIGHT * tallest) continue;
    const sorted = Float64Array.from(values[label]).sort();
    const strength = percentile(sorted, 0.9);
    if (strength >= S.FAINT_FLOOR && strength < S.FAINT_MARK) {
      if (out === ink) out = makeImage(width, height, Float32Array.from(ink.data));
      for (let i = 0; i < labels.length; i++) {
        if (labels[i] === label) out.data[i] = Math.min(ink.data[i] / strength, 1);
      }
    }
  }
  return out;
}

// The height in rows of each labelled mark (strokes.mark_heights); index 0 is the paper.
function heightsOf(labels, width, count) {
  const tops = new Array(count + 1).fill(Infinity);
  const bottoms = new Array(count + 1).fill(-1);
  for (let i = 0; i < labels.length; i++) {
    const y = Math.floor(i / width);
    const label = labels[i];
    if (y < tops[label]) tops[label] = y;
    if (y > bottoms[label]) bottoms[label] = y;
  }
  return tops.map((top, label) => bottoms[label] - top + 1);
}

// The strokes of an ink map: its pixels above 0.5.
export function inkMask(ink) {
  const data = new Uint8Array(ink.data.length);
  for (let i = 0; i < data.length; i++) data[i] = ink.data[i] > 0.5 ? 1 : 0;
  return makeMask(ink.width, ink.height, data);
}

// Stroke labels and the labels of the marks that are not specks (strokes.marks): small marks
// stacked into a column, a faint stroke broken up, count together.
export function marks(mask) {
  const { labels, count } = labelComponents(mask);
  const areas = new Array(count + 1).fill(0);
  for (const label of labels) areas[label] += 1;
  const floor = S.SPECK_SHARE * Math.max(0, ...areas.slice(1));
  const heights = heightsOf(labels, mask.width, count);
  const tall = S.FRAGMENT_HEIGHT * Math.max(0, ...heights.slice(1));
  const kept = new Set();
  const small = [];
  for (let i = 1; i <= count; i++) {
    (areas[i] >= floor || heights[i] >= tall ? kept.add(i) : small.push(i));
  }
  if (small.length >= 2 && small.length <= S.SPECK_CHAINS) {
    const boxes = new Map(small.map((label) => [label, [Infinity, Infinity, -1, -1]]));
    labels.forEach((label, i) => {
      const box = boxes.get(label);
      if (!box) return;
      const x = i % mask.width;
      const y = Math.floor(i / mask.width);
      box[0] = Math.min(box[0], x);
      box[1] = Math.min(box[1], y);
      box[2] = Math.max(box[2], x + 1);
      box[3] = Math.max(box[3], y + 1);
    });
    const root = new Map(small.map((label) => [label, label]));
    const find = (label) => {
      while (root.get(label) !== label) label = root.get(label);
      return label;
    };
    small.forEach((a, i) => {
      for (const b of small.slice(i + 1)) {
        const [la, ta, ra, ba] = boxes.get(a);
        const [lb, tb, rb, bb] = boxes.get(b);
        if (Math.min(ra, rb) > Math.max(la, lb) &&
            Math.max(ta, tb) - Math.min(ba, bb) <= S.SPECK_CHAIN_GAP) {
          const [x, y] = [find(a), find(b)];
          root.set(Math.max(x, y), Math.min(x, y));
        }
      }
    });
    const chains = new Map();
    for (const label of small) {
      const r = find(label);
      if (!chains.has(r)) chains.set(r, []);
      chains.get(r).push(label);
    }
    for (const chain of chains.values()) {
      const total = chain.reduce((sum, label) => sum + areas[label], 0);
      if (chain.length > 1 && total >= floor) { // one stroke: one mark
        const members = new Set(chain);
        labels.forEach((label, i) => { if (members.has(label)) labels[i] = chain[0]; });
        kept.add(chain[0]);
      }
    }
  }
  absorbNear(mask, labels, count, kept);
  return { labels, kept: [...kept].sort((a, b) => a - b) };
}

// Specks within SPECK_REACH pixels of a kept mark become part of it, in place
// (strokes._absorb_near): a faint stroke broken off a digit stays with it.
function absorbNear(mask, labels, count, kept) {
  const isKept = new Uint8Array(count + 1);
  for (const label of kept) isKept[label] = 1;
  let loose = false;
  for (let i = 0; i < labels.length && !loose; i++) loose = labels[i] > 0 && !isKept[labels[i]];
  if (!loose) return; // every mark is kept: nothing to absorb
  const keptOnly = makeImage(mask.width, mask.height, new Float32Array(labels.length));
  for (let i = 0; i < labels.length; i++) keptOnly.data[i] = isKept[labels[i]] ? labels[i] : 0;
  const reach = maxFilter(keptOnly, 2 * S.SPECK_REACH + 1).data;
  const nearest = new Float32Array(count + 1);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] > 0 && reach[i] > nearest[labels[i]]) nearest[labels[i]] = reach[i];
  }
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label > 0 && !isKept[label] && nearest[label] > 0) labels[i] = nearest[label];
  }
}

function labelMask(mask, labels, wanted) {
  const set = new Set(wanted);
  return makeMask(mask.width, mask.height, Uint8Array.from(labels, (l) => (set.has(l) ? 1 : 0)));
}

function join(groups, a, b) {
  const [ga, gb] = [groups[a], groups[b]];
  groups[a] = [Math.min(ga[0], gb[0]), Math.min(ga[1], gb[1]), Math.max(ga[2], gb[2]),
    Math.max(ga[3], gb[3]), ga[4].concat(gb[4])];
  groups.splice(b, 1);
}

// The digits of a mask, left to right (strokes.group_strokes).
export function groupStrokes(mask) {
  const { labels, kept } = marks(mask);
  if (kept.length > S.MAX_MARKS) throw new RangeError(`${kept.length} separate marks`);
  const groups = kept.map((label) => [...inkBox(labelMask(mask, labels, [label])), [label]]);
  if (!groups.length) return [];
  groups.sort((g, h) => (g[0] + g[2]) - (h[0] + h[2]));
  let joined = true;
  while (joined) {
    joined = false;
    for (let a = 0; a < groups.length && !joined; a++) {
      for (let b = a + 1; b < groups.length; b++) {
        const [ga, gb] = [groups[a], groups[b]];
        const overlap = Math.min(ga[2], gb[2]) - Math.max(ga[0], gb[0]);
        if (overlap > S.OVERLAP_SHARE * Math.min(ga[2] - ga[0], gb[2] - gb[0])) {
          join(groups, a, b);
          joined = true;
          break;
        }
      }
    }
  }
  const line = Math.max(...groups.map((g) => g[3] - g[1]));
  while (groups.length > 1) {
    const heights = groups.map((g) => g[3] - g[1]);
    const short = heights.indexOf(Math.min(...heights));
    if (heights[short] >= S.FRAGMENT_HEIGHT * line) break;
    const s = groups[short];
    const gaps = groups.map((g, i) => (i === short ? Infinity
      : Math.max(g[0], s[0]) - Math.min(g[2], s[2])));
    const nearest = gaps.indexOf(Math.min(...gaps));
    if (gaps[nearest] > S.FRAGMENT_GAP * line) break;
    join(groups, Math.min(short, nearest), Math.max(short, nearest));
  }
  groups.sort((g, h) => (g[0] + g[2]) - (h[0] + h[2]));
  return groups.map((g) => labelMask(mask, labels, g[4]));
}

// Columns where a piece may hold two touching digits (segment.cut_candidates).
export function cutCandidates(mask, limit = 3) {
  const [left, top, right, bottom] = inkBox(mask);
  const height = bottom - top;
  const width = right - left;
  const profile = new Float64Array(width);
  for (let y = 0; y < mask.height; y++) {
    for (let x = left; x < right; x++) profile[x - left] += mask.data[y * mask.width + x];
  }
  const margin = Math.max(1, Math.floor(S.MIN_DIGIT_WIDTH * height));
  if (width < 2 * margin + 1) return [];
  const middle = [];
  for (let c = margin; c < width - margin; c++) middle.push(c);
  const cost = middle.map((c) => profile[c]
    + S.CENTRE_PULL * height * Math.abs(c - width / 2) / (width / 2));
  const order = middle.map((_, i) => i).sort((a, b) => cost[a] - cost[b] || a - b);
  const chosen = [];
  for (const i of order) {
    const column = middle[i];
    if (chosen.every((c) => Math.abs(column - c) > margin / 2)) chosen.push(column);
    if (chosen.length === limit) break;
  }
  return chosen.map((c) => left + c);
}

// The least-ink top-to-bottom path from near `column` over rows [top, bottom) (segment.cut_path).
export function cutPath(mask, top, bottom, column, reach) {
  const low = Math.max(0, column - reach);
  const high = Math.min(mask.width, column + reach + 1);
  const span = high - low;
  const ink = (y, i) => mask.data[(top + y) * mask.width + low + i];
  const drift = (i) => S.DRIFT * Math.abs(low + i - column);
  const rows = bottom - top;
  let cost = Float64Array.from({ length: span }, (_, i) => ink(0, i) + drift(i));
  const moves = Array.from({ length: rows }, () => new Int8Array(span));
  for (let y = 1; y < rows; y++) {
    const next = new Float64Array(span);
    for (let i = 0; i < span; i++) {
      const options = [i > 0 ? cost[i - 1] : Infinity, cost[i], i + 1 < span ? cost[i + 1] : Infinity];
      let step = 0;
      if (options[1] < options[step]) step = 1;
      if (options[2] < options[step]) step = 2;
      moves[y][i] = step - 1;
      next[i] = options[step] + ink(y, i) + drift(i);
    }
    cost = next;
  }
  let x = 0;
  for (let i = 1; i < span; i++) if (cost[i] < cost[x]) x = i;
  const path = new Int32Array(rows);
  for (let y = rows - 1; y >= 0; y--) {
    path[y] = low + x;
    x += moves[y][x];
  }
  return path;
}

function crossings(mask, top, path) {
  let count = 0;
  let previous = 0;
  for (let y = 0; y < path.length; y++) {
    const x = Math.min(Math.max(path[y], 0), mask.width - 1);
    const on = mask.data[(top + y) * mask.width + x];
    if (on && !previous) count += 1;
    previous = on;
  }
  return count;
}

function splitAlong(mask, path) {
  const left = makeMask(mask.width, mask.height);
  const right = makeMask(mask.width, mask.height);
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      const i = y * mask.width + x;
      if (mask.data[i]) (x < path[y] ? left : right).data[i] = 1;
    }
  }
  return [left, right];
}

// `mask` whole, or cut in two (recursively) where the parts score higher than the whole
// (segment.choose_cut): `verified` when the scores include the one-digit verifier's.
async function chooseCut(mask, confidence, verified) {
  const [left, top, right, bottom] = inkBox(mask);
  const aspect = (right - left) / (bottom - top);
  if (aspect < (verified ? S.VERIFIED_WIDE : S.WIDE)) return [mask];
  const whole = (await confidence([mask]))[0];
  if (!verified && whole >= S.CUT_BELOW && aspect < S.SURELY_TWO) return [mask];
  let best = null;
  let bestScore = whole;
  const [limit, mostCrossed] = verified ? [S.VERIFIED_CANDIDATES, S.VERIFIED_CROSSINGS] : [3, 1];
  for (const column of cutCandidates(mask, limit)) {
    const inner = cutPath(mask, top, bottom, column, Math.floor((right - left) / 4));
    if (crossings(mask, top, inner) > mostCrossed) continue;
    const path = new Int32Array(mask.height);
    path.fill(inner[0], 0, top);
    path.set(inner, top);
    path.fill(inner[inner.length - 1], bottom);
    const parts = splitAlong(mask, path);
    if (!parts.every((p) => p.data.some((v) => v))) continue;
    const sure = await confidence(parts);
    const score = sure.reduce((a, b) => a * b, 1);
    if (score > bestScore && (verified || Math.min(...sure) >= S.PART_SURE)) {
      best = parts;
      bestScore = score;
    }
  }
  if (!best) return [mask];
  const pieces = [];
  for (const part of best) pieces.push(...await chooseCut(part, confidence, verified));
  return pieces;
}

function union(a, b) {
  return makeMask(a.width, a.height, a.data.map((v, i) => v | b.data[i]));
}

// Close neighbours, one read unsurely, joined while together they score higher than either
// apart (segment.choose_joins).
async function chooseJoins(groups, confidence) {
  groups = [...groups];
  const boxes = groups.map(inkBox);
  const reach = S.FRAGMENT_GAP * Math.max(0, ...boxes.map((b) => b[3] - b[1]));
  let scores = null; // asked for only once some neighbours are close
  while (groups.length > 1) {
    const close = [];
    for (let i = 0; i + 1 < groups.length; i++) {
      if (boxes[i + 1][0] - boxes[i][2] <= reach) close.push(i);
    }
    if (!close.length) break;
    scores ??= [...await confidence(groups)]; // spliced below, so a plain array
    const pairs = close.filter((i) => Math.min(scores[i], scores[i + 1]) < S.JOIN_BELOW);
    if (!pairs.length) break;
    const together = await confidence(pairs.map((i) => union(groups[i], groups[i + 1])));
    let [best, bestGain, bestScore] = [-1, 0, 0];
    pairs.forEach((i, k) => {
      const gain = together[k] - Math.max(scores[i], scores[i + 1]);
      if (gain > bestGain) [best, bestGain, bestScore] = [i, gain, together[k]];
    });
    if (best < 0) break;
    groups.splice(best, 2, union(groups[best], groups[best + 1]));
    boxes.splice(best, 2, inkBox(groups[best]));
    scores.splice(best, 2, bestScore);
  }
  return groups;
}

// The ink of one piece, cropped to it with a margin of RIM pixels: its strokes with their rim
// (the mask grown by a pixel) and the faint ink under 0.5 that reaches them without coming within
// REACH_HALO / 2 pixels of another stroke (segment.piece_ink): a light 9's loop stays the 9's.
const RIM = 3;
export function pieceInk(ink, mask) {
  const [left, top, right, bottom] = inkBox(mask);
  const x0 = Math.max(0, left - RIM);
  const y0 = Math.max(0, top - RIM);
  const x1 = Math.min(mask.width, right + RIM);
  const y1 = Math.min(mask.height, bottom + RIM);
  const width = x1 - x0;
  const height = y1 - y0;
  const own = makeImage(width, height);
  const inkPart = makeImage(width, height);
  const others = makeImage(width, height);
  let anyOther = false;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      own.data[i] = mask.data[(y0 + y) * mask.width + x0 + x];
      inkPart.data[i] = ink.data[(y0 + y) * ink.width + x0 + x];
      if (inkPart.data[i] > 0.5 && !own.data[i]) {
        others.data[i] = 1;
        anyOther = true;
      }
    }
  }
  const near = anyOther ? maxFilter(others, S.REACH_HALO) : others;
  const reach = makeMask(width, height);
  for (let i = 0; i < width * height; i++) {
    reach.data[i] = own.data[i] || (inkPart.data[i] > 0 && !(near.data[i] > 0.5)) ? 1 : 0;
  }
  const { labels } = labelComponents(reach);
  const reached = new Set();
  for (let i = 0; i < width * height; i++) if (own.data[i]) reached.add(labels[i]);
  const grown = maxFilter(own, 3);
  const out = makeImage(width, height);
  for (let i = 0; i < width * height; i++) {
    if (reached.has(labels[i]) || grown.data[i] > 0.5) out.data[i] = inkPart.data[i];
  }
  return out;
}

// How a mark scored whole as a share of its parts' product, 0 when it was not cut
// (segment.cut_doubt): near 1, the cut was a close call.
async function cutDoubt(mark, parts, score) {
  if (parts.length < 2) return 0;
  const whole = (await score([mark]))[0];
  const together = (await score(parts)).reduce((a, b) => a * b, 1);
  return whole / Math.max(together, 1e-12);
}

function overlaps(a, b) {
  return a.data.some((v, i) => v && b.data[i]);
}

// How many rows a mask's ink spans (segment.height).
function heightOf(mask) {
  const [, top, , bottom] = inkBox(mask);
  return bottom - top;
}

// The digits of a written number, left to right: [{box, ink, cutDoubt, cutHeight}], box in ink-map
// pixels. `confidence(inks)` resolves to the reader's top probability for each (times the
// one-digit verifier's when `verified`, and then close pieces may also join); null cuts
// nothing. Throws a RangeError when there are too many marks or digits for a number.
export async function splitNumber(ink, confidence, verified = false) {
  ink = evenOut(ink);
  let groups = groupStrokes(inkMask(ink));
  if (groups.length > S.MAX_DIGITS) throw new RangeError(`${groups.length} separate marks`);
  let doubts = groups.map(() => 0);
  let sources = groups.map(() => 0); // the height of the mark a piece was cut from, 0 if not cut
  if (confidence) {
    const score = (masks) => confidence(masks.map((m) => pieceInk(ink, m)));
    const cut = [];
    doubts = [];
    sources = [];
    for (const group of groups) {
      const parts = await chooseCut(group, score, verified);
      const doubt = await cutDoubt(group, parts, score);
      const source = parts.length > 1 ? heightOf(group) : 0;
      cut.push(...parts);
      doubts.push(...parts.map(() => doubt));
      sources.push(...parts.map(() => source));
    }
    groups = cut;
    if (verified) {
      const joined = await chooseJoins(cut, score);
      [doubts, sources] = [doubts, sources].map((values) => joined.map((piece) => Math.max(
        ...cut.map((g, i) => (overlaps(g, piece) ? values[i] : 0)))));
      groups = joined;
    }
    if (groups.length > S.MAX_DIGITS) throw new RangeError(`${groups.length} digits`);
  }
  return groups.map((group, i) => ({ box: inkBox(group), ink: pieceInk(ink, group),
    cutDoubt: doubts[i], cutHeight: sources[i] ? heightOf(group) / sources[i] : 1 }));
}

// How tall the tallest mark of ink outside every piece's box is, as a share of the pieces'
// median height (segment.left_out): at S.LEFT_OUT_HEIGHT or more a digit may be missing.
export function leftOut(ink, pieces) {
  if (pieces.length === 0) return 0;
  const outside = inkMask(evenOut(ink));
  for (const [left, top, right, bottom] of pieces.map((piece) => piece.box)) {
    for (let y = top; y < bottom; y++) outside.data.fill(0, y * outside.width + left, y * outside.width + right);
  }
  const { labels, count } = labelComponents(outside);
  if (count === 0) return 0;
  const tallest = Math.max(...heightsOf(labels, outside.width, count).slice(1));
  const heights = pieces.map((piece) => piece.box[3] - piece.box[1]).sort((a, b) => a - b);
  const middle = heights.length / 2;
  const median = heights.length % 2 ? heights[Math.floor(middle)]
    : (heights[middle - 1] + heights[middle]) / 2;
  return tallest / median;
}
