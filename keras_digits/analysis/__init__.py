"""How the models do: scores on labelled folders and Semeion (`evaluate`), the HTML report
(`report`, `plots`), and speed against in-run baselines (`bench`, `time_to_accuracy`, `flops`)."""
