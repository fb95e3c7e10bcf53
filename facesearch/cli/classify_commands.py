"""Commands of the classifiers and dataset tools: train, crop, export, import, split, augment-preview,
bench classify.

Thin click skins over :mod:`facesearch.classify` and the gallery's export and import.
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from facesearch.cli import render
from facesearch.cli.bench_commands import bench
from facesearch.cli.root import exit_on_errors, main, open_gallery, progress_bar

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
    from facesearch.classify.train import train_mlp

    try:
        widths = tuple(int(w) for w in hidden.split(",") if w.strip())
    except ValueError:
        raise click.UsageError(f"--hidden: expected comma-separated integers, got {hidden!r}") from None
    result = train_mlp(open_gallery(ctx), out=out, eval_dir=eval_dir, epochs=epochs, hidden=widths, dropout=dropout,
                       learning_rate=learning_rate, seed=seed)
    render.emit(result.summary, as_json, render.training_text)


def _image_command(kind: str, doc: str) -> click.Command:
    """``train inception|ensemble|boxnet DATA``: the same options for the three image models."""

    @click.argument("data", type=click.Path(exists=True, file_okay=False))
    @click.option("--out", type=click.Path(file_okay=False), default=None,
                  help="Write reports here (history, classification report, confusion matrix, misclassified).")
    @click.option("--base-weights", default="imagenet", show_default=True, metavar="imagenet|facenet|PATH|none",
                  help="Base network weights: Keras's ImageNet download; facenet (offline: FaceNet's face-trained "
                       "Inception-ResNet-v1 in place of InceptionV3, up to its last pooling layer); a weights file "
                       "(or a folder of them); or none (train everything from random weights).")
    @click.option("--epochs", type=click.IntRange(1), default=100, show_default=True, help="Most epochs (early stopping).")
    @click.option("--input-size", type=click.IntRange(32, 1024), default=None,
                  help="Input side in pixels (InceptionV3 needs at least 75)  [default: 160 with facenet, else 224]")
    @click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
    @click.option("--learning-rate", type=float, default=1e-3, show_default=True,
                  help="Adam's first step, decayed x0.9 per epoch.")
    @click.option("--fine-tune", type=click.IntRange(0), default=0, show_default=True,
                  help="Then unfreeze the top N layers of the pretrained base (blocks of the facenet base) and "
                       "train on.")
    @click.option("--fine-tune-epochs", type=click.IntRange(1), default=10, show_default=True)
    @click.option("--augment/--no-augment", default=kind == "ensemble", show_default=True,
                  help="Random rotation, shifts, shear, flips and brightness while training.")
    @click.option("--val", type=click.FloatRange(0, 0.9), default=0.15, show_default=True,
                  help="Validation fraction when DATA has no train/ val/ test/ inside.")
    @click.option("--test", type=click.FloatRange(0, 0.9), default=0.15, show_default=True, help="Test fraction, same.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--save-to", type=click.Path(file_okay=False), default=None,
                  help=f"Save the model here (default: HOME/models/{kind}).")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    @click.pass_context
    def command(ctx, data, out, base_weights, epochs, input_size, batch_size, learning_rate, fine_tune,
                fine_tune_epochs, augment, val, test, seed, save_to, as_json):
        from facesearch.classify.base import model_dir
        from facesearch.classify.train import train_image_model

        # Saved under the gallery, a model is the gallery's: its state is recorded so that
        # `query --rerank` refuses it once people are enrolled, removed or renamed.
        gallery = None if save_to else open_gallery(ctx)
        target = save_to or model_dir(gallery.home, kind)
        try:
            result = train_image_model(kind, data, save_to=target, out=out, val=val, test=test,
                                       base_weights=base_weights, epochs=epochs, input_size=input_size,
                                       batch_size=batch_size, learning_rate=learning_rate, fine_tune=fine_tune,
                                       fine_tune_epochs=fine_tune_epochs, augment=augment, seed=seed, gallery=gallery)
        finally:
            if gallery is not None:
                gallery.close()
        render.emit(result.summary, as_json, render.training_text)

    command.__doc__ = doc
    return train.command(name=kind)(command)


_image_command("inception", """Train InceptionV3 on face crops (DATA: folder per identity, e.g. from `facesearch crop`).

    Head: Flatten, Dense 1024 ReLU, Dropout 0.2, Dense 128 ELU, Dropout 0.1, softmax.
    """)
_image_command("ensemble", """Train MobileNetV2 + InceptionV3 features with a dense head on face crops, with augmentation.""")
_image_command("boxnet", """Train InceptionV3 with two outputs on whole photos: face box (from the detector) and identity.""")


# -- dataset tools ----------------------------------------------------------------------------

@click.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option("--size", type=click.IntRange(16, 1024), default=224, show_default=True, help="Crop side in pixels.")
@click.option("--all-faces", is_flag=True, help="Write every face of a photo (default: its largest, the labelled person).")
@click.option("--no-cache", is_flag=True, help="Detect again even for photos seen before.")
@click.option("--json", "as_json", is_flag=True, help="Print the log as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def crop(ctx, src, dst, size, all_faces, no_cache, as_json, quiet):
    """Crop the faces of a folder-per-identity tree SRC into DST (same layout).

    Writes DST/crop_log.json listing photos with no face and with several faces. Unreadable
    photos are listed as errors, the rest are cropped, and the exit status is 1.
    """
    from facesearch.classify.crops import crop_tree

    with progress_bar("cropping", quiet) as (on_total, update):
        report = crop_tree(src, dst, size=size, all_faces=all_faces, use_cache=not no_cache, progress=update,
                           on_total=on_total)
    data = {**report.as_dict(), "folder": str(dst), "log": str(Path(dst) / "crop_log.json")}
    render.emit(data, as_json, render.crop_text)
    exit_on_errors(ctx, data["errors"])


@click.command(name="export")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", type=click.IntRange(16, 1024), default=160, show_default=True, help="Crop side in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def export_cmd(ctx, out, size, as_json):
    """Export the gallery to OUT as NumPy arrays and average_embeddings.json.

    all_images.npy (crops, (x - 127.5) / 128), all_labels.npy, label_mapping.npy,
    face_embeddings.npy, average_embeddings.json (name -> L2-normalised mean embedding).
    """
    data = open_gallery(ctx).export(out, size=size)
    render.emit(data, as_json, render.export_text)


@click.command(name="import")
@click.argument("averages", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_cmd(ctx, averages, as_json):
    """Enroll the identities of an average_embeddings.json (from `facesearch export`).

    Each becomes one synthetic face whose embedding is the average (no source photo).
    """
    data = open_gallery(ctx).import_averages(averages)
    render.emit(data, as_json, render.import_text)


@click.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option("--val", type=click.FloatRange(0, 0.9), default=0.15, show_default=True, help="Fraction to val/.")
@click.option("--test", type=click.FloatRange(0, 0.9), default=0.15, show_default=True, help="Fraction to test/.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the split as JSON.")
def split(src, dst, val, test, seed, as_json):
    """Copy SRC into DST/train, DST/val, DST/test, stratified by identity, seeded.

    Also writes DST/split.json and DST/class_distribution.png.
    """
    from facesearch.classify.splits import write_split

    data = write_split(src, dst, val=val, test=test, seed=seed)
    render.emit(data, as_json, render.split_text)


@click.command(name="augment-preview")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("-n", "count", type=click.IntRange(1, 35), default=8, show_default=True, help="Augmented versions.")
@click.option("--seed", type=int, default=0, show_default=True)
def augment_preview(photo, out, count, seed):
    """Write a grid PNG of PHOTO and COUNT versions of it through the training augmentation."""
    from facesearch.imaging.decode import load_image
    from facesearch.classify.augment import preview_augmentation

    preview_augmentation(load_image(photo), out, n=count, seed=seed)
    click.echo(f"Wrote {out}")


# -- bench ------------------------------------------------------------------------------------

@click.command(name="classify")
@click.option("--train", "train_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder-per-identity photos enrolled (and the mlp's training data).")
@click.option("--test", "test_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="Folder-per-identity photos of the same people to name.")
@click.option("--model", "models", type=click.Path(exists=True, file_okay=False), multiple=True,
              help="A saved classifier (any kind) to add; repeatable. A fresh mlp is always included.")
@click.option("--unknown", "unknown_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder-per-identity photos of people not in --train: adds the share of them left unknown.")
@click.option("--threshold", type=float, default=None, help="The matchers' threshold (default: the product's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fresh mlp.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
def bench_classify(train_dir, test_dir, models, unknown_dir, threshold, seed, as_json):
    """Accuracy and weighted P/R/F1 of matchers, classifiers alone, and classifiers reranking.

    With --unknown, also the open-set figure: the share of never-enrolled people left unknown.
    """
    from facesearch.bench import classifiers

    data = classifiers.run(train_dir, test_dir, models=models, unknown_dir=unknown_dir, threshold=threshold,
                           seed=seed)
    render.emit(data, as_json, render.classify_bench_text)


for _command in (train, crop, export_cmd, import_cmd, split, augment_preview):
    main.add_command(_command)
bench.add_command(bench_classify)
