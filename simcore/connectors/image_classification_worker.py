"""The Image Classification connector's model server: one process on the connector's runtime (Python 3.8, MXNet).

Never imported by simcore: `simcore.connectors.image_classification` runs it as
`<mxnet python> image_classification_worker.py <model dir>`, as the v1 connector's own Lambda ran its bundled
MXNet. Standard library, numpy and mxnet only; Python 3.8 compatible (vermin checks it).

The model is what SageMaker's built-in image-classification algorithm writes: `image-classification-symbol.json`,
`image-classification-<epoch>.params` (the highest epoch is served) and `model-shapes.json`
(`[{"name": "data", "shape": [1, 3, H, W]}]`). An image is decoded to RGB, resized to W x H and fed as raw
0-255 pixels in NCHW, as SageMaker's serving feeds it; the answer is the softmax output as text,
`[0.3,0.1,0.04,...]`, in the order of the training classes.

Protocol, over stdin/stdout (stderr is the log):
- once loaded, one line: `{"ready": true, "classes": n, "shape": [...]}` or `{"ready": false, "error": "..."}`
  (then the process exits 1);
- per request: a line `{"content_type": "...", "size": n}` then n body bytes; the answer is one line,
  `{"ok": true, "body": "[...]", "probabilities": [...]}` or `{"ok": false, "type": "...", "error": "..."}`.
"""

import glob
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
        shape = [int(dim) for dim in shapes[0]["shape"]]
    except OSError:
        raise ModelError(f"{path} is missing") from None
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ModelError(f"{path} is not [{{\"name\": \"data\", \"shape\": [...]}}]: {error}") from None
    if len(shape) != 4 or shape[1] not in (1, 3) or min(shape) < 1:
        raise ModelError(f"{path} gives shape {shape}; expected [batch, channels (1 or 3), height, width]")
    return [1] + shape[1:]


class Classifier:
    """The model bound for inference, one image at a time."""

    def __init__(self, model_dir):
        import mxnet as mx

        self.mx = mx
        if not os.path.isdir(model_dir):
            raise ModelError(f"the model folder {model_dir} does not exist")
        symbol_path = os.path.join(model_dir, SYMBOL_FILE)
        if not os.path.isfile(symbol_path):
            raise ModelError(f"{symbol_path} is missing")
        self.shape = _input_shape(model_dir)
        epoch, _ = _params_file(model_dir)
        try:
            symbol, arg_params, aux_params = mx.model.load_checkpoint(
                os.path.join(model_dir, "image-classification"), epoch
            )
            # SageMaker's symbols end in SoftmaxOutput: its label is not needed to infer.
            self.module = mx.mod.Module(symbol, data_names=["data"], label_names=None, context=mx.cpu())
            self.module.bind(for_training=False, data_shapes=[("data", tuple(self.shape))])
            self.module.set_params(arg_params, aux_params, allow_missing=True)
        except mx.base.MXNetError as error:
            raise ModelError(f"MXNet cannot load the model in {model_dir}: {_first_line(error)}") from None
        self.classes = len(self.classify_pixels(self.mx.nd.zeros(tuple(self.shape))))

    def decode(self, body, content_type):
        """The image as the network's input batch; RequestError for a wrong type or an undecodable body."""
        if content_type not in MAGIC:
            raise RequestError(
                "InvalidInputException",
                f"ContentType {content_type!r} is not supported: use image/jpeg or image/png",
            )
        if not body.startswith(MAGIC[content_type]):
            raise RequestError("InvalidInputException", f"The body is not a {FORMAT_NAMES[content_type]} image")
        mx = self.mx
        _, channels, height, width = self.shape
        try:
            image = mx.image.imdecode(body, flag=1 if channels == 3 else 0, to_rgb=1)
            image = mx.image.imresize(image, width, height)
        except mx.base.MXNetError as error:
            raise RequestError(
                "InvalidInputException", f"The {content_type} image cannot be decoded: {_first_line(error)}"
            ) from None
        return mx.nd.transpose(image.astype("float32"), axes=(2, 0, 1)).expand_dims(axis=0)

    def classify_pixels(self, batch):
        """Class probabilities (float32 numpy) for one input batch."""
        self.module.forward(self.mx.io.DataBatch([batch]), is_train=False)
        return self.module.get_outputs()[0].asnumpy()[0]

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
        header = json.loads(header_line)
        body = inp.read(int(header["size"]))
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
