"""Plain Keras 3 model builders, one per input kind. No training logic and no file reading here."""
