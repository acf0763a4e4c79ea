"""Training: a run's settings and compiled model (`compiled`), its input pipeline with predict's
renderings of the training digits (`input_pipeline`, `renderings`), resumable callbacks
(`resume`), devices and precision (`runtime`), data-parallel processes (`cluster`), the loop
that publishes a trained model (`train`) and its temperature (`calibrate`)."""
