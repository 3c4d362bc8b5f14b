"""Running metrics, the CloudWatch Metrics connector's input and the ML Feedback sample."""

from __future__ import annotations

import base64
import json
import random

import pytest
from rain_inference.cloudwatch import metric_message, metrics_messages
from rain_inference.feedback import feedback_invocation, is_low_confidence
from rain_inference.metrics import AUC_BINS, RunningMetrics, Scoring, percentile
from rain_inference.settings import CONFIG_ID_PATTERN, load_settings


def pairwise_auc(scores, labels):
    """ROC-AUC by its definition: the share of (rainy, dry) pairs ranked right, ties counting half."""
    positives = [s for s, label in zip(scores, labels) if label]  # noqa: B905 (runs on 3.8 too)
    negatives = [s for s, label in zip(scores, labels) if not label]  # noqa: B905
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7], 0.99) == 7
    assert percentile([], 0.5) is None


def test_latency_percentiles_cover_the_last_window_only():
    metrics = RunningMetrics(latency_window=10)
    for latency in [1000] * 50 + list(range(1, 11)):
        metrics.record_prediction(0.1, False, latency, None)
    snapshot = metrics.snapshot()
    assert snapshot["count"] == 60
    assert snapshot["latency_us"] == {"p50": 5, "p99": 10, "window": 10}


def test_auc_equals_the_pairwise_definition_when_scores_fall_in_distinct_bins():
    generator = random.Random(3)
    bins = generator.sample(range(AUC_BINS), 300)
    scores = [(index + 0.5) / AUC_BINS for index in bins]
    labels = [generator.random() < 0.3 + 0.4 * score for score in scores]
    scoring = Scoring()
    for score, label in zip(scores, labels):  # noqa: B905
        scoring.add(score, score >= 0.5, label)
    assert scoring.roc_auc() == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


def test_auc_is_within_one_bin_of_the_pairwise_value_for_arbitrary_scores():
    generator = random.Random(11)
    scores = [generator.random() for _ in range(2000)]
    labels = [generator.random() < score for score in scores]
    scoring = Scoring()
    for score, label in zip(scores, labels):  # noqa: B905
        scoring.add(score, score >= 0.5, label)
    assert scoring.roc_auc() == pytest.approx(pairwise_auc(scores, labels), abs=1.0 / AUC_BINS)


def test_precision_recall_and_confusion_at_the_threshold():
    scoring = Scoring()
    for p_rain, raining, observed in [
        (0.9, True, True),
        (0.8, True, False),
        (0.2, False, True),
        (0.1, False, False),
        (0.7, True, True),
        (0.0, False, False),
    ]:
        scoring.add(p_rain, raining, observed)
    snapshot = scoring.snapshot()
    assert snapshot["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert snapshot["precision"] == pytest.approx(2 / 3)
    assert snapshot["recall"] == pytest.approx(2 / 3)
    assert snapshot["count"] == 6


def test_scores_are_undefined_until_both_classes_are_seen():
    scoring = Scoring()
    scoring.add(0.4, False, False)
    assert scoring.snapshot() == {
        "count": 1,
        "precision": None,
        "recall": None,
        "roc_auc": None,
        "confusion": {"tp": 0, "fp": 0, "tn": 1, "fn": 0},
    }


def test_errors_and_notes_are_counted_separately():
    metrics = RunningMetrics()
    metrics.record_error("feature", "humidity: missing")
    metrics.note("skipped.unchanged")
    metrics.record_prediction(0.6, True, 40, True)
    snapshot = metrics.snapshot()
    assert snapshot["errors"] == 1 and snapshot["last_error"] == "feature: humidity: missing"
    assert snapshot["counters"] == {"error.feature": 1, "skipped.unchanged": 1}
    assert snapshot["rain_rate"] == 1.0
    json.dumps(snapshot, allow_nan=False)


# --- the CloudWatch Metrics connector's input --------------------------------------------------------
def test_a_metric_message_has_the_connector_input_shape():
    dimensions = {"Thing": "t", "ModelVersion": "3"}
    message = metric_message("RainEdge", "LatencyP99", 812.0, "Microseconds", dimensions, 1539027324.0)
    assert message == {
        "request": {
            "namespace": "RainEdge",
            "metricData": {
                "metricName": "LatencyP99",
                "value": 812.0,
                "unit": "Microseconds",
                "timestamp": 1539027324.0,
                "dimensions": [{"name": "ModelVersion", "value": "3"}, {"name": "Thing", "value": "t"}],
            },
        }
    }


def test_counts_are_sent_as_the_increase_since_the_last_publication_and_undefined_values_not_at_all():
    first = {
        "count": 10,
        "errors": 1,
        "latency_us": {"p50": 30, "p99": 90},
        "rain_rate": 0.2,
        "scored": {"precision": None, "recall": 0.5, "roc_auc": 0.8},
    }
    second = dict(first, count=25, errors=1)
    messages = metrics_messages("RainEdge", second, first, {"Thing": "t"}, 5.0)
    values = {m["request"]["metricData"]["metricName"]: m["request"]["metricData"]["value"] for m in messages}
    assert values == {
        "Predictions": 15.0,
        "Errors": 0.0,
        "LatencyP50": 30.0,
        "LatencyP99": 90.0,
        "RainRate": 20.0,
        "Recall": 0.5,
        "RocAuc": 0.8,
    }
    units = {m["request"]["metricData"]["metricName"]: m["request"]["metricData"]["unit"] for m in messages}
    assert units["RainRate"] == "Percent" and units["Predictions"] == "Count"


# --- the ML Feedback connector's input ------------------------------------------------------------------
def test_low_confidence_is_a_band_around_the_threshold():
    assert is_low_confidence(0.45, 0.5, 0.1) and is_low_confidence(0.6, 0.5, 0.1)
    assert not is_low_confidence(0.61, 0.5, 0.1) and not is_low_confidence(0.05, 0.5, 0.1)
    assert not is_low_confidence(0.5, 0.5, 0.0)


def test_a_feedback_invocation_carries_the_ml_sdk_publish_arguments():
    reading = {"temperature": 20.0, "humidity": 90.0, "pressure": 1001.0, "pressure_tendency_3h": -2.0}
    invocation = feedback_invocation("rain-low-confidence", reading, 0.45, {"seq": 3})
    context = json.loads(base64.b64decode(invocation.client_context, validate=True))
    assert list(context) == ["custom"]
    custom = context["custom"]
    assert set(custom) == {"ConfigId", "ModelPrediction", "Metadata"}
    assert CONFIG_ID_PATTERN.match(custom["ConfigId"])
    assert custom["ModelPrediction"] == pytest.approx([0.55, 0.45])
    assert custom["Metadata"] == {"seq": 3}
    assert isinstance(invocation.payload, bytes) and json.loads(invocation.payload) == reading


def test_a_non_finite_value_cannot_become_a_feedback_invocation():
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        feedback_invocation("rain-low-confidence", {"temperature": float("nan")}, 0.5, {})


def test_inference_settings_name_bad_values_and_fall_back():
    settings = load_settings(
        {
            "THING_NAME": "t",
            "METRICS_INTERVAL_S": "0",
            "FEEDBACK_BAND": "0.9",
            "FEEDBACK_CONFIG_ID": "-bad",
            "CLOUDWATCH_NAMESPACE": "AWS/IoT",
            "FEEDBACK_CONNECTOR_ARN": "MLFeedback",
            "FEEDBACK_TOPIC": "rain/t/feedback",
        }
    )
    assert settings.metrics_interval_s == 60.0 and settings.feedback_band == 0.1
    assert settings.feedback_config_id == "rain-low-confidence"
    assert settings.cloudwatch_namespace == "RainEdge"
    assert settings.feedback_connector_arn is None, "a malformed ARN turns feedback off"
    assert len(settings.problems) == 6
    assert any("FEEDBACK_TOPIC is ignored" in problem for problem in settings.problems)
    assert load_settings({"AWS_IOT_THING_NAME": "core"}).thing_name == "core"
    assert load_settings({}).model_dir == "/ml/rain"


@pytest.mark.parametrize("arn", [
    "arn:aws:lambda:us-east-1:aws:function:MLFeedback",
    "arn:aws-cn:lambda:cn-north-1:aws:function:MLFeedback",
    "arn:aws:lambda:eu-west-1:123456789012:function:OtherFeedback:live",
])
def test_feedback_connector_arn_takes_function_arns_as_greengrasssdk_parses_them(arn):
    settings = load_settings({"THING_NAME": "t", "FEEDBACK_CONNECTOR_ARN": arn})
    assert settings.feedback_connector_arn == arn and settings.problems == []


@pytest.mark.parametrize("arn", [
    "arn:aws:greengrass:us-east-1::/connectors/MLFeedback/versions/1",  # the connector's own ARN
    "arn:aws:lambda:us-east-1:aws:function:MLFeedback\n",
    "arn:aws:lambda:us-east-1:aws:function:ML Feedback",
])
def test_feedback_connector_arn_that_is_not_a_function_arn_is_a_problem(arn):
    settings = load_settings({"THING_NAME": "t", "FEEDBACK_CONNECTOR_ARN": arn})
    assert settings.feedback_connector_arn is None
    assert [problem.split(" must ")[0] for problem in settings.problems] == ["FEEDBACK_CONNECTOR_ARN"]
