// The image file the JavaScript parity runners read: int32 count, then per image int32 width,
// int32 height and float32 grey pixels (tests/test_serve.py writes it).
import { readFileSync } from "node:fs";

export function readImages(path) {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const images = [];
  let offset = 4;
  for (let i = 0; i < view.getInt32(0, true); i++) {
    const width = view.getInt32(offset, true);
    const height = view.getInt32(offset + 4, true);
    offset += 8;
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset,
      bytes.byteOffset + offset + 4 * width * height));
    offset += 4 * width * height;
    images.push({ width, height, data });
  }
  return images;
}
