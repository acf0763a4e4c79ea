// Runs the page's preprocessing on raw float32 grey images for tests/test_serve.py.
// argv: module path, input file, output file, the preprocessing constants as JSON (what the
// server hands the page). Input: int32 count, then per image int32 width,
// int32 height, float32 pixels. Output: per image 784 float32 values (all -1 when no ink).
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [modulePath, inputPath, outputPath, constants] = process.argv.slice(2);
const { configure, grayToPixels, makeImage } = await import(pathToFileURL(modulePath).href);
configure(JSON.parse(constants));
const bytes = readFileSync(inputPath);
const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const count = view.getInt32(0, true);
const results = new Float32Array(count * 784);
let offset = 4;
for (let i = 0; i < count; i++) {
  const width = view.getInt32(offset, true);
  const height = view.getInt32(offset + 4, true);
  offset += 8;
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset,
    bytes.byteOffset + offset + 4 * width * height));
  offset += 4 * width * height;
  const frame = grayToPixels(makeImage(width, height, data)) ?? new Float32Array(784).fill(-1);
  results.set(frame, i * 784);
}
writeFileSync(outputPath, Buffer.from(results.buffer));
