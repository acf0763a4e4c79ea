// Runs the page's number splitting on raw float32 grey images for tests/test_serve.py.
// argv: web folder, input file (images_bin.mjs), output file, the /api/config constants as JSON
// (with `verified`: cut by the rule for scores that include the one-digit verifier's).
// Output: JSON, per image the pieces' boxes, 28x28 inputs and cut doubts and the ink left out of
// them, or the error. The reader's confidence is a stand-in both sides
// share (test_numbers.stand_in_scores): by a piece's width for its height, unsure (0.4) from
// 0.75, sure (0.95) under 0.3, surest (0.99) between.
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { readImages } from "./images_bin.mjs";

const [webDir, inputPath, outputPath, constants] = process.argv.slice(2);
const pre = await import(pathToFileURL(`${webDir}/preprocess.js`).href);
const seg = await import(pathToFileURL(`${webDir}/segment.js`).href);
const config = JSON.parse(constants);
pre.configure(config.preprocessing);
seg.configureSegmentation(config.segmentation);

function standIn(inks) {
  return inks.map((ink) => {
    const [left, top, right, bottom] = pre.inkBox(ink);
    const aspect = (right - left) / (bottom - top);
    return aspect >= 0.75 ? 0.4 : aspect < 0.3 ? 0.95 : 0.99;
  });
}

const results = [];
for (const { width, height, data } of readImages(inputPath)) {
  try {
    const ink = pre.inkMap(pre.makeImage(width, height, data));
    const pieces = await seg.splitNumber(ink, async (inks) => standIn(inks), config.verified);
    results.push({ boxes: pieces.map((p) => p.box),
      pixels: pieces.map((p) => Array.from(pre.mnistStyle(p.ink), (v) => v * 255)),
      cutDoubts: pieces.map((p) => p.cutDoubt),
      cutHeights: pieces.map((p) => p.cutHeight),
      leftOut: seg.leftOut(ink, pieces) });
  } catch (error) {
    results.push({ error: error.message });
  }
}
writeFileSync(outputPath, JSON.stringify(results));
