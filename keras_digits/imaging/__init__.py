"""From an image file to the model's 28x28 inputs, in the order an image goes through it:
`decode` (any file to grey) -> `page` (the box around the writing, the desk) -> `find_ink`
(paper tone, background, page rules) -> `normalize` (crop, pen width, 20-pixel box, centre of
mass) for one digit, or `strokes` and `segment` (a written number split into digits).
numpy and Pillow only: reading never imports TensorFlow. `raster` holds the shared primitives."""
