"""The models: the registry with each model's recipe (`registry`), the five classifiers
(`classifiers`), the training-only distortions (`distortions`), temperature scaling
(`calibration`, numpy only) and loading trained files back (`saved`).
Importing the package itself loads nothing: Keras comes with `registry`."""
