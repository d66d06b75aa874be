"""Evaluation records (one schema, written and read here), their writers, and the answer metrics by name."""

from rsvlm_zoo.evaluation.records import prediction_records, prompt_text, read_records
from rsvlm_zoo.evaluation.writers import (
    EvaluationWriter,
    PredictionWriter,
    markdown_table,
    strict_json,
    write_evaluation,
)

__all__ = [
    "EvaluationWriter",
    "PredictionWriter",
    "markdown_table",
    "prediction_records",
    "prompt_text",
    "read_records",
    "strict_json",
    "write_evaluation",
]
