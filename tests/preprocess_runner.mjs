// Runs the page's preprocessing on raw float32 grey images for tests/test_serve.py.
// argv: module path, input file (images_bin.mjs), output file, the preprocessing constants as
// JSON (what the server hands the page). Output: per image 784 float32 values (all -1 when no
// ink).
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { readImages } from "./images_bin.mjs";

const [modulePath, inputPath, outputPath, constants] = process.argv.slice(2);
const { configure, grayToPixels, makeImage } = await import(pathToFileURL(modulePath).href);
configure(JSON.parse(constants));
const images = readImages(inputPath);
const results = new Float32Array(images.length * 784);
images.forEach(({ width, height, data }, i) => {
  const frame = grayToPixels(makeImage(width, height, data)) ?? new Float32Array(784).fill(-1);
  results.set(frame, i * 784);
});
writeFileSync(outputPath, Buffer.from(results.buffer));
