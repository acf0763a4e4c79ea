"""Serving: the HTTP prediction endpoint (`api`), the server with the draw-a-digit page
(`server`, `web/`: the page runs the exported ONNX files in the browser)."""
