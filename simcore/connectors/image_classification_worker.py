"""The Image Classification connector's model server: one process on the connector's runtime (Python 3.8, MXNet).

Never imported by simcore: `simcore.connectors.image_classification` runs it as
`<mxnet python> image_classification_worker.py <model dir>`, as the v1 connector's own Lambda ran its bundled
MXNet. Standard library, numpy, mxnet and Pillow only; Python 3.8 compatible (vermin checks it). MXNet runs
its synchronous engine (`MXNET_ENGINE_TYPE=NaiveEngine`, set by the connector): one image at a time gains
nothing from engine threads and pays a thread hand-off per operator.

The model is what SageMaker's built-in image-classification algorithm writes: `image-classification-symbol.json`,
`image-classification-<epoch>.params` (the highest epoch is served) and `model-shapes.json`
(`[{"name": "data", "shape": [1, 3, H, W]}]`). An image is decoded to RGB with Pillow, resized to W x H
(bilinear) and fed as raw 0-255 pixels in NCHW, as SageMaker's serving feeds it, to an executor bound once;
the answer is the softmax output as text, `[0.3,0.1,0.04,...]`, in the order of the training classes.

Protocol, over stdin/stdout (stderr is the log):
- once loaded, one line: `{"ready": true, "classes": n, "shape": [...]}` or `{"ready": false, "error": "..."}`
  (then the process exits 1);
- per request: a line `{"content_type": "...", "size": n}` then n body bytes; the answer is one line,
  `{"ok": true, "body": "[...]", "probabilities": [...]}` or `{"ok": false, "type": "...", "error": "..."}`.
"""

import glob
import io
import json
import os
import re
import sys

SYMBOL_FILE = "image-classification-symbol.json"
SHAPES_FILE = "model-shapes.json"
PARAMS_PATTERN = re.compile(r"image-classification-(\d{4})\.params$")
# The two image types the connector takes, by the bytes each format starts with.
MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
FORMAT_NAMES = {"image/jpeg": "JPEG", "image/png": "PNG"}
MAX_HEADER_BYTES = 4096
# Larger images are refused before they are decoded (a 16-megapixel RGB image decodes to 48 MB).
MAX_PIXELS = 4096 * 4096


class ModelError(Exception):
    """The model folder does not hold a SageMaker image-classification model."""


class RequestError(Exception):
    """A request the service refuses: `kind` is the error type answered (e.g. `InvalidInputException`)."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _params_file(model_dir):
    """The `.params` file of the highest epoch, and that epoch."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(model_dir), "image-classification-*.params")):
        match = PARAMS_PATTERN.search(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise ModelError(f"no image-classification-<epoch>.params file in {model_dir}")
    return max(found)


def _input_shape(model_dir):
    path = os.path.join(model_dir, SHAPES_FILE)
    try:
        with open(path) as shapes_file:
            shapes = json.load(shapes_file)
        name = str(shapes[0].get("name", "data"))
        shape = [int(dim) for dim in shapes[0]["shape"]]
    except OSError:
        raise ModelError(f"{path} is missing") from None
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ModelError(f"{path} is not [{{\"name\": \"data\", \"shape\": [...]}}]: {error}") from None
    if len(shape) != 4 or shape[1] not in (1, 3) or min(shape) < 1:
        raise ModelError(f"{path} gives shape {shape}; expected [batch, channels (1 or 3), height, width]")
    return name, [1] + shape[1:]


class Classifier:
    """The model bound for inference, one image at a time, on MXNet's lowest-overhead path (an executor)."""

    def __init__(self, model_dir):
        import mxnet as mx
        import numpy as np
        from PIL import Image

        self.mx, self.np, self.image = mx, np, Image
        if not os.path.isdir(model_dir):
            raise ModelError(f"the model folder {model_dir} does not exist")
        symbol_path = os.path.join(model_dir, SYMBOL_FILE)
        if not os.path.isfile(symbol_path):
            raise ModelError(f"{symbol_path} is missing")
        self.input_name, self.shape = _input_shape(model_dir)
        epoch, _ = _params_file(model_dir)
        try:
            symbol, arg_params, aux_params = mx.model.load_checkpoint(
                os.path.join(model_dir, "image-classification"), epoch
            )
            # SageMaker's symbols end in SoftmaxOutput: its label is bound (shape inferred) but never read.
            self.executor = symbol.simple_bind(mx.cpu(), grad_req="null", **{self.input_name: tuple(self.shape)})
            for name, array in self.executor.arg_dict.items():
                if name in arg_params:
                    arg_params[name].copyto(array)
                elif name != self.input_name and not name.endswith("_label"):
                    raise ModelError(f"the params file has no {name!r}, which the symbol needs")
            for name, array in self.executor.aux_dict.items():
                if name not in aux_params:
                    raise ModelError(f"the params file has no auxiliary state {name!r}")
                aux_params[name].copyto(array)
        except mx.base.MXNetError as error:
            raise ModelError(f"MXNet cannot load the model in {model_dir}: {_first_line(error)}") from None
        self.input = self.executor.arg_dict[self.input_name]
        self.classes = len(self.classify_pixels(np.zeros(self.shape, dtype=np.float32)))

    def decode(self, body, content_type):
        """The image as the network's input batch (numpy NCHW float32, raw 0-255 pixels); RequestError for a
        wrong type, an undecodable body or one of more than `MAX_PIXELS` pixels (checked before decoding)."""
        if content_type not in MAGIC:
            raise RequestError(
                "InvalidInputException",
                f"ContentType {content_type!r} is not supported: use image/jpeg or image/png",
            )
        if not body.startswith(MAGIC[content_type]):
            raise RequestError("InvalidInputException", f"The body is not a {FORMAT_NAMES[content_type]} image")
        _, channels, height, width = self.shape
        try:
            image = self.image.open(io.BytesIO(body))  # reads the header only
            if image.width * image.height > MAX_PIXELS:
                raise RequestError("InvalidInputException", f"The image is {image.width}x{image.height} pixels; "
                                   f"the service takes at most {MAX_PIXELS} pixels")
            image = image.convert("RGB" if channels == 3 else "L")
            if image.size != (width, height):
                image = image.resize((width, height), self.image.BILINEAR)
            pixels = self.np.asarray(image, dtype=self.np.float32)
        except (OSError, ValueError, SyntaxError, self.image.DecompressionBombError) as error:
            raise RequestError(
                "InvalidInputException", f"The {content_type} image cannot be decoded: {_first_line(error)}"
            ) from None
        chw = pixels.transpose(2, 0, 1) if channels == 3 else pixels[None]
        return chw[None]

    def classify_pixels(self, batch):
        """Class probabilities (float32 numpy) for one input batch."""
        self.input[:] = batch
        self.executor.forward(is_train=False)
        return self.executor.outputs[0].asnumpy()[0]

    def classify(self, body, content_type):
        """The probabilities for one encoded image."""
        return self.classify_pixels(self.decode(body, content_type))


def _first_line(error):
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def as_text(probabilities):
    """`[0.3,0.1,...]`: each float32 at its shortest exact form, no spaces, as the connector answers."""
    return "[" + ",".join(str(value) for value in probabilities) + "]"


def _answer(out, message):
    out.write(json.dumps(message).encode("utf-8") + b"\n")
    out.flush()


def serve(model_dir, inp, out):
    """Load the model, say whether it is ready, then answer requests until stdin closes."""
    try:
        classifier = Classifier(model_dir)
    except ModelError as error:
        _answer(out, {"ready": False, "error": str(error)})
        return 1
    _answer(out, {"ready": True, "classes": classifier.classes, "shape": classifier.shape})
    while True:
        header_line = inp.readline(MAX_HEADER_BYTES)
        if not header_line:
            return 0
        try:
            header = json.loads(header_line)
            size = int(header["size"])
        except (ValueError, KeyError, TypeError):
            sys.stderr.write(f"unreadable request header {header_line[:100]!r}: stopping\n")
            return 2  # the stream cannot be resynchronised; the connector starts a new server
        body = inp.read(size)
        try:
            probabilities = classifier.classify(body, header.get("content_type"))
        except RequestError as error:
            _answer(out, {"ok": False, "type": error.kind, "error": str(error)})
            continue
        except Exception as error:  # noqa: BLE001 - the service answers every request; the core logs the cause
            sys.stderr.write(f"inference failed: {error!r}\n")
            _answer(out, {"ok": False, "type": "InferenceException", "error": _first_line(error)})
            continue
        _answer(out, {"ok": True, "body": as_text(probabilities), "probabilities": [float(p) for p in probabilities]})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: image_classification_worker.py <model dir>\n")
        sys.exit(2)
    # The protocol keeps the real stdout; anything a library prints goes to the log (stderr) instead.
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.exit(serve(sys.argv[1], sys.stdin.buffer, protocol_out))
