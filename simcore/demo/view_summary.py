"""Prints the demo's closing summary: the score of the replayed period beside the model card's, and losses."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from simcore.demo.summary import Summary


def _figure(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_summary(summary: Summary, console: Console) -> None:
    """The summary as a few tables and lines on `console`."""
    outcome_style = {"complete": "bold green", "stalled": "bold red", "interrupted": "bold yellow"}[summary.outcome]
    console.print()
    console.print(f"[{outcome_style}]replay {summary.outcome}[/]: station {summary.station}, "
                  f"{summary.date_from} to {summary.date_to}, {summary.duration_s:.1f} s")

    counts = Table(title="messages", show_header=False)
    counts.add_row("records in the period", str(summary.total_records))
    counts.add_row("readings written to the shadow", str(summary.readings_written))
    counts.add_row("records not written (invalid, e.g. a missing value)", str(summary.invalid_readings))
    counts.add_row("predictions received in the cloud", str(summary.predictions_received))
    declined = ", ".join(f"{name} {count}" for name, count in summary.declined_detail.items())
    detail = f" ({declined})" if declined else ""
    counts.add_row("readings the model declined", f"{summary.declined_by_model}{detail}")
    lost_style = "bold green" if summary.messages_lost == 0 else "bold red"
    counts.add_row("messages lost", f"[{lost_style}]{summary.messages_lost}[/]")
    if summary.unanswered_seqs:
        counts.add_row("readings with no prediction (seq)", ", ".join(map(str, summary.unanswered_seqs)))
    if summary.duplicate_predictions:
        counts.add_row("duplicate deliveries (ignored)", str(summary.duplicate_predictions))
    console.print(counts)
    _print_local_aws(summary.local_aws, console)

    if summary.score is None:
        console.print("no prediction with an observed outcome: nothing to score")
        return
    score = summary.score
    matrix = Table(title=f"confusion matrix ({score.rows} scored hours, {score.rain_hours} with rain)")
    matrix.add_column("")
    matrix.add_column("observed rain", justify="right")
    matrix.add_column("observed dry", justify="right")
    matrix.add_row("predicted rain", str(score.confusion.tp), str(score.confusion.fp))
    matrix.add_row("predicted dry", str(score.confusion.fn), str(score.confusion.tn))
    console.print(matrix)

    figures = Table(title="scores")
    figures.add_column("figure")
    figures.add_column("this replay", justify="right")
    if summary.comparison:
        figures.add_column("model card (test)", justify="right")
        figures.add_column("", justify="center")
        for row in summary.comparison:
            figures.add_row(row["figure"], _figure(row["replay"]), _figure(row["model_card"]),
                            "[green]✓[/]" if row["agrees"] else "[red]✗[/]")
    else:
        for name, value in (("precision", score.precision), ("recall", score.recall), ("ROC-AUC", score.roc_auc)):
            figures.add_row(name, _figure(value))
    console.print(figures)
    if summary.agrees_with_model_card is not None:
        verdict = ("[bold green]agrees with the model card's test figures[/]" if summary.agrees_with_model_card
                   else "[bold red]differs from the model card's test figures[/]")
        console.print(f"{summary.station} {summary.date_from} to {summary.date_to}: {verdict}")
    if summary.note:
        console.print(summary.note)


def _print_local_aws(found: dict | None, console: Console) -> None:
    """What the connectors put in the stand-in's local AWS, as read back from it (CloudWatch, S3)."""
    if not found:
        return
    table = Table(title=f"read back from the local AWS ({found.get('endpoint')})", show_header=False)
    if found.get("error"):
        table.add_row("error", str(found["error"]))
    for metric in found.get("metrics", []):
        dimensions = ", ".join(f"{key}={value}" for key, value in metric["dimensions"].items())
        table.add_row(f"CloudWatch {found.get('namespace')}/{metric['name']}" + (f" ({dimensions})" if dimensions
                                                                                   else ""),
                      f"{metric['count']} datapoints, sum {metric['sum']:g}")
    for bucket, listing in found.get("feedback", {}).items():
        table.add_row(f"S3 s3://{bucket}", f"{listing['count']} feedback objects")
    console.print(table)
