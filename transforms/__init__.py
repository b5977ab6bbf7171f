"""Beam PTransforms of the scoring pipeline and the TensorFlow functions they apply."""
