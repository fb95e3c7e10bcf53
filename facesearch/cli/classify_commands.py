"""CLI commands of the classifiers and dataset tools (issue 5), added to ``facesearch`` by :func:`register`.

Thin click skins over :mod:`facesearch.classify`; same conventions as :mod:`facesearch.cli`:
``--json`` everywhere, errors as one line and exit status 1.
"""
from __future__ import annotations

import logging
from pathlib import Path

import click

from facesearch.cli.root import _emit, _fail_on_errors, _gallery, _lazy_progress

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
    result = train_mlp(_gallery(ctx), out=out, eval_dir=eval_dir, epochs=epochs, hidden=widths, dropout=dropout,
                       learning_rate=learning_rate, seed=seed)
    _emit(result.summary, as_json, _print_summary)


def _image_command(kind: str, doc: str) -> click.Command:
    """``train inception|ensemble|boxnet DATA``: the same options for the three image models."""

    @click.argument("data", type=click.Path(exists=True, file_okay=False))
    @click.option("--out", type=click.Path(file_okay=False), default=None,
                  help="Write reports here (history, classification report, confusion matrix, misclassified).")
    @click.option("--base-weights", default="imagenet", show_default=True, metavar="imagenet|PATH|none",
                  help="Base network weights: Keras's ImageNet download, a weights file (or a folder of them), "
                       "or none (train everything from random weights).")
    @click.option("--epochs", type=click.IntRange(1), default=100, show_default=True, help="Most epochs (early stopping).")
    @click.option("--input-size", type=click.IntRange(32, 1024), default=224, show_default=True,
                  help="Input side in pixels (InceptionV3 needs at least 75).")
    @click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
    @click.option("--learning-rate", type=float, default=1e-3, show_default=True,
                  help="Adam's first step, decayed x0.9 per epoch.")
    @click.option("--fine-tune", type=click.IntRange(0), default=0, show_default=True,
                  help="Then unfreeze the top N layers of the pretrained base and train on.")
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
        gallery = None if save_to else _gallery(ctx)
        target = save_to or model_dir(gallery.home, kind)
        try:
            result = train_image_model(kind, data, save_to=target, out=out, val=val, test=test,
                                       base_weights=base_weights, epochs=epochs, input_size=input_size,
                                       batch_size=batch_size, learning_rate=learning_rate, fine_tune=fine_tune,
                                       fine_tune_epochs=fine_tune_epochs, augment=augment, seed=seed, gallery=gallery)
        finally:
            if gallery is not None:
                gallery.close()
        _emit(result.summary, as_json, _print_summary)

    command.__doc__ = doc
    return train.command(name=kind)(command)


_image_command("inception", """Train InceptionV3 on face crops (DATA: folder per identity, e.g. from `facesearch crop`).

    Head: Flatten, Dense 1024 ReLU, Dropout 0.2, Dense 128 ELU, Dropout 0.1, softmax.
    """)
_image_command("ensemble", """Train MobileNetV2 + InceptionV3 features with a dense head on face crops, with augmentation.""")
_image_command("boxnet", """Train InceptionV3 with two outputs on whole photos: face box (from the detector) and identity.""")


def _print_summary(d: dict) -> None:
    click.echo(f"Trained {d['kind']} ({d['epochs']} epochs); saved to {d['model_dir']}")
    if d.get("accuracy") is not None:
        line = f"  accuracy {100 * d['accuracy']:.1f}%"
        if "weighted_f1" in d:
            line += (f", weighted precision {100 * d['weighted_precision']:.1f}%, recall "
                     f"{100 * d['weighted_recall']:.1f}%, F1 {100 * d['weighted_f1']:.1f}%")
        click.echo(f"{line} on {d['evaluated_on']}")
    if "box_mean_iou" in d:
        click.echo(f"  face box: mean IoU {d['box_mean_iou']:.3f} with the detector's boxes")
    for name, path in d.get("files", {}).items():
        click.echo(f"  {name:<28} {path}")


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
    from facesearch.classify.dataset import crop_tree

    with _lazy_progress("cropping", quiet) as (on_total, update):
        report = crop_tree(src, dst, size=size, all_faces=all_faces, use_cache=not no_cache, progress=update,
                           on_total=on_total)
    data = {**report.as_dict(), "log": str(Path(dst) / "crop_log.json")}

    def human(d):
        click.echo(f"Cropped {d['cropped']} face(s) into {dst}; {len(d['no_face'])} photo(s) without a face, "
                   f"{len(d['multiple_faces'])} with several, {len(d['errors'])} error(s). Log: {d['log']}")
        for p in d["no_face"]:
            click.echo(f"  {p}: no face found")
        for m in d["multiple_faces"]:
            click.echo(f"  {m['path']}: {m['faces']} faces")

    _emit(data, as_json, human)
    _fail_on_errors(ctx, data["errors"])


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
    from facesearch.classify.dataset import export_gallery

    data = export_gallery(_gallery(ctx), out, size=size)
    _emit(data, as_json, lambda d: click.echo(
        f"Exported {d['exported_images']} of {d['faces']} face(s) of {d['identities']} identities to {d['folder']}"
        f" ({d['synthetic_faces']} imported average(s) and {len(d['missing_photos'])} missing photo(s) "
        f"left out of the image arrays)."))


@click.command(name="import")
@click.argument("averages", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_cmd(ctx, averages, as_json):
    """Enroll the identities of an average_embeddings.json (from `facesearch export`).

    Each becomes one synthetic face whose embedding is the average (no source photo).
    """
    from facesearch.classify.dataset import import_averages

    data = import_averages(_gallery(ctx), averages)
    _emit(data, as_json, lambda d: click.echo(
        f"Imported {len(d['imported'])} identit{'y' if len(d['imported']) == 1 else 'ies'} from {averages}; "
        f"{len(d['duplicates'])} already there."))


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
    from facesearch.classify.dataset import write_split

    data = write_split(src, dst, val=val, test=test, seed=seed)
    _emit(data, as_json, lambda d: click.echo(
        "Split " + ", ".join(f"{k} {v}" for k, v in d["totals"].items()) + f" photos; chart: {d['class_distribution_png']}"))


@click.command(name="augment-preview")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("-n", "count", type=click.IntRange(1, 35), default=8, show_default=True, help="Augmented versions.")
@click.option("--seed", type=int, default=0, show_default=True)
def augment_preview(photo, out, count, seed):
    """Write a grid PNG of PHOTO and COUNT versions of it through the training augmentation."""
    from facesearch.imaging.decode import load_image
    from facesearch.classify.dataset import preview_augmentation

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
    from facesearch.models.analysis import FaceAnalysis
    from facesearch.search.match import DEFAULT_THRESHOLD
    from facesearch.classify.base import Classifier
    from facesearch.bench.classifiers import classifier_rows, folder_probes
    from facesearch.classify.mlp import MLPClassifier
    from facesearch.classify.train import embed_folder

    analysis = FaceAnalysis()
    train_x, train_y, failed = embed_folder(train_dir, analysis)
    loaded = [Classifier.load(m) for m in models]
    sizes = [c.input_size for c in loaded if c.input_kind == "crop"]
    photo_sizes = [c.input_size for c in loaded if c.input_kind == "photo"]
    inputs = dict(crop_size=max(sizes, default=None), photo_size=max(photo_sizes, default=None))
    probes = folder_probes(test_dir, analysis, **inputs)
    strangers = folder_probes(unknown_dir, analysis, **inputs) if unknown_dir else None
    if strangers is not None:
        overlap = sorted(set(strangers.names) & set(train_y))
        if overlap:
            raise click.UsageError(f"--unknown {unknown_dir}: {', '.join(overlap[:3])} "
                                   f"{'is' if len(overlap) == 1 else 'are'} enrolled from --train, so not unknown")
    mlp = MLPClassifier(seed=seed).fit(train_x, train_y)
    thr = DEFAULT_THRESHOLD if threshold is None else threshold
    rows = classifier_rows(train_x, train_y, probes, [mlp, *loaded], threshold=thr, unknown=strangers)
    data = {"benchmark": "classify", "train": train_dir, "test": test_dir, "train_faces": len(train_y),
            "train_no_face": len(failed), "test_faces": len(probes.names), "identities": len(set(train_y)),
            "unknown": unknown_dir, "unknown_faces": len(strangers.names) if strangers else None,
            "threshold": thr, "rows": rows}

    def human(d):
        click.echo(f"Closed-set identification: {d['identities']} identities, {d['train_faces']} enrolled faces, "
                   f"{d['test_faces']} test faces (threshold {d['threshold']:.2f} for matchers and rerankers)")
        click.echo(f"{'method':<22} {'role':<9} {'accuracy':>8} {'precision':>9} {'recall':>7} {'F1':>6} {'unknown':>7}")
        for r in d["rows"]:
            click.echo(f"{r['method']:<22} {r['role']:<9} {100 * r['accuracy']:8.1f} {100 * r['weighted_precision']:9.1f} "
                       f"{100 * r['weighted_recall']:7.1f} {100 * r['weighted_f1']:6.1f} {r['unknown']:>7}"
                       + (f"   changed {r['changed']}" if "changed" in r else "")
                       + (f"   strangers left unknown {100 * r['unknown_rejected']:.1f}%"
                          if r.get("unknown_rejected") is not None else ""))
        click.echo("  (percentages; precision/recall/F1 weighted by support; unknown answers count as wrong)")
        if d["unknown"]:
            click.echo(f"  strangers: {d['unknown_faces']} faces of people not enrolled, from {d['unknown']}")

    _emit(data, as_json, human)


def register(main: click.Group) -> None:
    """Add this module's commands to the ``facesearch`` group (and ``bench classify`` to ``bench``)."""
    for command in (train, crop, export_cmd, import_cmd, split, augment_preview):
        main.add_command(command)
    bench = main.commands.get("bench")
    if isinstance(bench, click.Group):
        bench.add_command(bench_classify)
