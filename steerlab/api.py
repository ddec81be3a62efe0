"""What a plugin may import from steerlab: this module, and nothing else.

Built-in plugins import core only through here (``tests/test_api.py`` enforces it), and
``docs/plugin-api.md`` lists every name (``tests/test_docs.py`` checks it). Anything not here is
core's own business and may change without notice.
"""

from __future__ import annotations

from steerlab.analysis.evidence import Design, best_control
from steerlab.analysis.pareto import corner_effects, hypervolume, lambda_alignment
from steerlab.analysis.symmetric import (DIRECTIONS, SymmetricChooser, chosen_strength, dev_chosen_sweep, direction_sign, moves_both_ways, staged,
                                         symmetric_strengths, symmetric_success)
from steerlab.artifact import Artifact, ArtifactCache, ResidualVector
from steerlab.config import as_dict, help_field, path_field
from steerlab.controls import Control, ControlSpace, Fixed, Scalar, Simplex, corner_of, finite_number
from steerlab.data.builders import Style, answer_in_style, load_instructions, split_by_id, style_scores
from steerlab.data.files import BuildRequest, DatasetSpec, file_digest, read_labelled, read_prompts
from steerlab.data.split import PromptSplit, in_dev_half
from steerlab.errors import ConfigError
from steerlab.figures import markdown_table, new_figure, save_figure
from steerlab.gguf import export_control_vector
from steerlab.hookspecs import hookimpl
from steerlab.inspect.base import Inspector
from steerlab.lab import Lab, seed_everything
from steerlab.layout import RunLayout
from steerlab.method import BaseMethod, NoConfig, SteeringMethod
from steerlab.residual_method import ResidualVectorMethod
from steerlab.metrics.base import BaseMetric, Metric, MetricContext, Sample
from steerlab.metrics.builtin import distinct_ngrams, word_count
from steerlab.model.activations import ActivationBatch, Activations, activation_batches, collect
from steerlab.model.architectures import Architecture
from steerlab.model.engine import Delta, Edit, HookEngine, Update, add_vector, tokens_by_row
from steerlab.model.generation import Generation, GenerationSettings, generate
from steerlab.model.scoring import kl_per_token, mean_logprobs, row_logprobs, sequence_logprobs, target_logits, token_logprobs
from steerlab.model.sites import Site, match_sites, projection_features, resolve, stored_delta
from steerlab.model.zoo import LoadedModel, load_model, wrap
from steerlab.plugin import build_registry
from steerlab.preferences import PairSampler, PreferenceData, PreferencePair, pair_accuracy, read_pairs, split_pairs
from steerlab.results import Figure, Record, Section, StudyReport, SweepPoint, SweepResult
from steerlab.stats import Comparison, Cube, Draws, Estimate, all_of, compare, estimate, hypothesis, mean_over_controls, verdict, wilson_interval
from steerlab.storage import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl
from steerlab.study.schema import MethodEntry
from steerlab.training_report import heldout_accuracy, heldout_table, plot_heldout_accuracy, plot_training_logs, preference_summary
from steerlab.training import (DEFAULT_TARGETS, GroupSampler, SFTExample, StyleTraining, Validation, answer_tokens, encode_answer, gradient_tokens,
                               group_losses, kept_gradient_tokens, lora_config, lora_factors, optimise, read_sft, sample_simplex)

__all__ = [
    # plugin hooks and errors
    "hookimpl", "ConfigError",
    # the method contract
    "BaseMethod", "ResidualVectorMethod", "SteeringMethod", "NoConfig", "MethodEntry", "Lab", "Artifact", "ResidualVector", "ArtifactCache",
    "Control", "ControlSpace", "Scalar", "Simplex", "Fixed", "finite_number", "corner_of",
    "Section", "Figure", "SweepResult", "SweepPoint", "Record", "StudyReport", "RunLayout", "export_control_vector",
    # metrics and inspectors
    "BaseMetric", "Metric", "MetricContext", "Sample", "Inspector", "word_count", "distinct_ngrams",
    # config fields
    "help_field", "path_field", "as_dict",
    # the model side
    "LoadedModel", "load_model", "wrap", "Architecture", "HookEngine", "Edit", "Delta", "Update", "add_vector", "tokens_by_row", "Site", "match_sites", "resolve",
    "projection_features", "stored_delta",
    "Generation", "GenerationSettings", "generate", "Activations", "collect", "ActivationBatch", "activation_batches",
    "target_logits", "token_logprobs", "row_logprobs", "sequence_logprobs", "mean_logprobs", "kl_per_token",
    # training
    "SFTExample", "read_sft", "GroupSampler", "group_losses", "optimise", "Validation", "StyleTraining", "DEFAULT_TARGETS", "sample_simplex", "seed_everything",
    "encode_answer", "lora_config", "lora_factors", "answer_tokens", "gradient_tokens", "kept_gradient_tokens", "PreferencePair", "read_pairs", "PairSampler", "plot_training_logs", "heldout_table",
    "split_pairs", "pair_accuracy", "PreferenceData", "preference_summary", "heldout_accuracy", "plot_heldout_accuracy",
    # data and dataset builders
    "read_jsonl", "write_jsonl", "read_prompts", "read_labelled", "file_digest", "DatasetSpec", "BuildRequest",
    "Style", "answer_in_style", "style_scores", "load_instructions", "split_by_id", "build_registry",
    # files, figures, fronts
    "atomic_write_text", "write_json", "read_json", "new_figure", "save_figure", "markdown_table",
    "hypervolume", "lambda_alignment", "corner_effects",
    # success under both signs (actdiff's source validation, transfer's success)
    "symmetric_success", "symmetric_strengths", "moves_both_ways", "direction_sign", "DIRECTIONS",
    "chosen_strength", "SymmetricChooser", "staged", "dev_chosen_sweep",
    # intervals, verdicts and the dev / test halves (steerlab.stats, steerlab.analysis.evidence)
    "Cube", "Draws", "Estimate", "Comparison", "estimate", "compare", "mean_over_controls", "verdict", "hypothesis", "all_of",
    "Design", "best_control", "PromptSplit", "in_dev_half", "wilson_interval",
]
