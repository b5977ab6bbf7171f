"""Entry points: the scoring job, the model bundle export, the demo and predict_one."""

import os

# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN banners) is not for users.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
