"""CLI commands of the classifiers and dataset tools (issue 5), added to ``facesearch`` by :func:`register`.

Thin click skins over :mod:`facesearch.classify`; same conventions as :mod:`facesearch.cli`:
``--json`` everywhere, errors as one line and exit status 1.
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from ..cli import _emit, _gallery

log = logging.getLogger(__name__)


@click.group()
def train():
    """Train identity classifiers (mlp on the gallery's embeddings; image models on crops)."""


@train.command(name="mlp")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write reports here: history.png, classification_report.json, confusion_matrix.png, summary.json.")
@click.option("--eval", "eval_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder-per-identity photos to evaluate on (default: a stratified split of the gallery).")
@click.option("--epochs", type=click.IntRange(1), default=200, show_default=True, help="Most epochs (early stopping).")
@click.option("--hidden", default="256", show_default=True, help="Hidden layer widths, comma-separated.")
@click.option("--dropout", type=click.FloatRange(0, 0.95), default=0.3, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def train_mlp_cmd(ctx, out, eval_dir, epochs, hidden, dropout, learning_rate, seed, as_json):
    """Train the mlp classifier on the gallery's own stored embeddings.

    Saved under HOME/models/mlp/, where `query --rerank mlp` finds it. Enrolling, removing or
    renaming anyone afterwards makes it stale: retrain.
    """
    from .train import train_mlp

    try:
        widths = tuple(int(w) for w in hidden.split(",") if w.strip())
    except ValueError:
        raise click.UsageError(f"--hidden: expected comma-separated integers, got {hidden!r}") from None
    result = train_mlp(_gallery(ctx), out=out, eval_dir=eval_dir, epochs=epochs, hidden=widths, dropout=dropout,
                       learning_rate=learning_rate, seed=seed)
    _emit(result.summary, as_json, _print_summary)


def _print_summary(d: dict) -> None:
    click.echo(f"Trained {d['kind']} ({d['epochs']} epochs); saved to {d['model_dir']}")
    if d.get("accuracy") is not None:
        line = f"  accuracy {100 * d['accuracy']:.1f}%"
        if "weighted_f1" in d:
            line += (f", weighted precision {100 * d['weighted_precision']:.1f}%, recall "
                     f"{100 * d['weighted_recall']:.1f}%, F1 {100 * d['weighted_f1']:.1f}%")
        click.echo(f"{line} on {d['evaluated_on']}")
    for name, path in d.get("files", {}).items():
        click.echo(f"  {name:<28} {path}")


def register(main: click.Group) -> None:
    """Add this module's commands to the ``facesearch`` group."""
    main.add_command(train)
