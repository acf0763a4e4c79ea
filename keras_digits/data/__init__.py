"""The data: MNIST and Fashion-MNIST from their IDX files (`datasets`), labelled folders of your
own images and Semeion (`folders`), and digits laid out as numbers (`compose`). numpy only."""
