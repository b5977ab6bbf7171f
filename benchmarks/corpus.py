"""The benchmark's inputs: photo-sized JPEGs cut from real photographs, and random-weight models.

Nothing is downloaded. The photographs are the ones shipped inside installed wheels:
scikit-learn's ``china.jpg`` and ``flower.jpg`` and matplotlib's ``grace_hopper.jpg``. Each
benchmark image is a random crop (30-100% of the source side), rescaled to 640x480, maybe
mirrored, with brightness/contrast/saturation jitter, saved at JPEG quality 80-95: realistic
entropy for the decoder (noise would be slower to decode, flat colour faster), and every image
different. Larger corpora reuse the unique images through hard links with distinct names,
because the pipeline deduplicates URIs, not contents.

Models: ``keras.applications`` MobileNetV2 and ResNet50 with random weights (``weights=None``),
224x224 input, softmax over 1,000 classes, saved as ``.keras``.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

IMAGE_SIZE = (640, 480)  # (width, height), as Pillow orders it
CORPUS_VERSION = 1


def source_photographs() -> list[np.ndarray]:
    """RGB uint8 photographs bundled with scikit-learn and matplotlib."""
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(image) for image in load_sample_images().images]
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(np.asarray(Image.open(f).convert("RGB")))
    return photos


def make_jpeg(photo: np.ndarray, rng: np.random.Generator) -> bytes:
    """One 640x480 JPEG: a random crop of ``photo``, rescaled, flipped and colour-jittered."""
    from PIL import Image, ImageEnhance

    height, width = photo.shape[:2]
    scale = rng.uniform(0.3, 1.0)
    # Keep the 4:3 aspect of the output so rescaling does not stretch the content.
    crop_w = int(min(width, height * 4 / 3) * scale)
    crop_h = int(crop_w * 3 / 4)
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    image = Image.fromarray(photo[top : top + crop_h, left : left + crop_w])
    image = image.resize(IMAGE_SIZE, Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.5, 1.5))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(80, 96)))
    return buffer.getvalue()


def write_corpus(directory: str, unique: int, seed: int = 0) -> list[str]:
    """Writes ``unique`` distinct JPEGs into ``directory/unique`` (cached); returns paths."""
    target = os.path.join(directory, "unique")
    stamp = os.path.join(target, "DONE.json")
    expected = {"version": CORPUS_VERSION, "unique": unique, "seed": seed}
    paths = [os.path.join(target, f"img_{i:05d}.jpg") for i in range(unique)]
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == expected:
                return paths
    os.makedirs(target, exist_ok=True)
    photos = source_photographs()
    rng = np.random.default_rng(seed)
    for i, path in enumerate(paths):
        with open(path, "wb") as f:
            f.write(make_jpeg(photos[i % len(photos)], rng))
    with open(stamp, "w") as f:
        json.dump(expected, f)
    return paths


def linked_set(directory: str, name: str, unique_paths: list[str], count: int) -> str:
    """A directory of ``count`` distinct names hard-linked to the unique JPEGs; returns a glob.

    Hard links cost no disk and no page cache, and each name is a distinct URI to the job.
    """
    target = os.path.join(directory, name)
    os.makedirs(target, exist_ok=True)
    existing = {entry for entry in os.listdir(target) if entry.endswith(".jpg")}
    wanted = {f"img_{i:06d}.jpg" for i in range(count)}
    for stale in existing - wanted:
        os.remove(os.path.join(target, stale))
    for i in range(count):
        link = os.path.join(target, f"img_{i:06d}.jpg")
        if not os.path.exists(link):
            os.link(unique_paths[i % len(unique_paths)], link)
    return os.path.join(target, "*.jpg")


def save_models(directory: str, names: tuple[str, ...] = ("MobileNetV2", "ResNet50")) -> dict:
    """Random-weight Keras applications as ``.keras`` files (cached); returns name -> path."""
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for name in names:
        path = os.path.join(directory, f"{name.lower()}.keras")
        if not os.path.exists(path):
            import keras

            keras.utils.set_random_seed(0)
            model = getattr(keras.applications, name)(
                weights=None, input_shape=(224, 224, 3), classes=1000
            )
            model.save(path)
        paths[name] = path
    return paths


def save_tiny_model(directory: str) -> str:
    """A deliberately cheap classifier with the same 224x224 input and 1,000 classes.

    Used for the 2,000/20,000-image memory runs: with the model cost near zero the job is
    bound by reading and decoding, so 20,000 images fit the time budget, and a small constant
    model makes any growth with the input count stand out more, not less.
    """
    path = os.path.join(directory, "tinyconv.keras")
    if not os.path.exists(path):
        import keras

        keras.utils.set_random_seed(0)
        inputs = keras.Input((224, 224, 3))
        x = keras.layers.Conv2D(16, 3, strides=4, activation="relu")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(1000, activation="softmax")(x)
        os.makedirs(directory, exist_ok=True)
        keras.Model(inputs, outputs, name="tinyconv").save(path)
    return path
