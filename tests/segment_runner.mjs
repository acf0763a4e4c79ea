// Runs the page's number splitting on raw float32 grey images for tests/test_serve.py.
// argv: web folder, input file, output file, the /api/config constants as JSON. Input: int32
// count, then per image int32 width, int32 height, float32 pixels. Output: JSON, per image the
// pieces' boxes and 28x28 inputs, or the error. The reader's confidence is a stand-in both sides
// share: sure (0.95) of a piece narrower than 0.75 of its height, unsure (0.5) otherwise.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [webDir, inputPath, outputPath, constants] = process.argv.slice(2);
const pre = await import(pathToFileURL(`${webDir}/preprocess.js`).href);
const seg = await import(pathToFileURL(`${webDir}/segment.js`).href);
const config = JSON.parse(constants);
pre.configure(config.preprocessing);
seg.configureSegmentation(config.segmentation);

function stand_in(inks) {
  return inks.map((ink) => {
    let [top, bottom, left, right] = [ink.height, 0, ink.width, 0];
    for (let y = 0; y < ink.height; y++) {
      for (let x = 0; x < ink.width; x++) {
        if (ink.data[y * ink.width + x] > 0.5) {
          top = Math.min(top, y); bottom = Math.max(bottom, y + 1);
          left = Math.min(left, x); right = Math.max(right, x + 1);
        }
      }
    }
    return (right - left) < 0.75 * (bottom - top) ? 0.95 : 0.5;
  });
}

const bytes = readFileSync(inputPath);
const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const count = view.getInt32(0, true);
const results = [];
let offset = 4;
for (let i = 0; i < count; i++) {
  const width = view.getInt32(offset, true);
  const height = view.getInt32(offset + 4, true);
  offset += 8;
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset,
    bytes.byteOffset + offset + 4 * width * height));
  offset += 4 * width * height;
  try {
    const pieces = await seg.splitNumber(pre.inkMap(pre.makeImage(width, height, data)),
      async (inks) => stand_in(inks));
    results.push({ boxes: pieces.map((p) => p.box),
      pixels: pieces.map((p) => Array.from(pre.mnistStyle(p.ink), (v) => v * 255)) });
  } catch (error) {
    results.push({ error: error.message });
  }
}
writeFileSync(outputPath, JSON.stringify(results));
