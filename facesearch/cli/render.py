"""How results look on a terminal: one function per kind of result, from the same dicts that
``--json`` prints (and that the HTTP API returns), so the two never disagree.

Each ``*_text`` function takes a result dict and returns lines; :func:`emit` prints either the
JSON or those lines.
"""
from __future__ import annotations

import json
from typing import Callable, Iterable

import click

Renderer = Callable[[dict], Iterable[str]]


def emit(data, as_json: bool, render: Renderer) -> None:
    """Print ``data`` as one line of JSON, or as the lines ``render(data)`` gives."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    for line in render(data):
        click.echo(line)


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _pct(value: float | None, width: int = 5) -> str:
    return f"{'-':>{width}}" if value is None else f"{100 * value:{width}.1f}"


# -- gallery -------------------------------------------------------------------------------------

def enroll_text(d: dict) -> Iterable[str]:
    n_id = len(d["identities"])
    yield (f"Enrolled {len(d['enrolled'])} face(s) of {n_id} identit{_plural(n_id, 'y', 'ies')}; "
           f"{len(d['duplicates'])} duplicate(s) skipped, {len(d['no_face'])} photo(s) without a face, "
           f"{len(d['multiple_faces'])} with several faces, {len(d['errors'])} error(s).")
    for m in d["multiple_faces"]:
        yield f"  {m['path']}: {m['faces']} faces found; enrolled the largest"
    for p in d["no_face"]:
        yield f"  {p}: no face found"
    for dup in d["duplicates"]:
        yield f"  {dup['path']}: already enrolled as {dup['identity']}"


def query_text(d: dict) -> Iterable[str]:
    for r in d["results"]:
        faces = r["faces"]
        yield f"{r['image']}: {len(faces)} face{_plural(len(faces), '', 's')}"
        for f in faces:
            who = f["identity"] if f["identity"] is not None else "unknown"
            others = ", ".join(f"{c['identity']} {c['similarity']:.2f}" for c in f["candidates"][1:])
            yield f"  {f['box']}  {who:<20} {f['similarity']:.2f}" + (f"   next: {others}" if others else "")


def verify_text(d: dict) -> Iterable[str]:
    verdict = "same person" if d["same_person"] else "different people"
    yield f"{verdict}: similarity {d['similarity']:.2f} (threshold {d['threshold']:.2f})"
    for image, face in zip(d["images"], d["faces"]):
        extra = f", largest of {face['faces_found']} faces" if face["faces_found"] > 1 else ""
        yield f"  {image}: face {face['box']}{extra}"


def identities_text(rows: list[dict]) -> Iterable[str]:
    if not rows:
        yield "The gallery is empty."
        return
    width = max(len(r["name"]) for r in rows)
    yield f"{'identity':<{width}}  faces  photos"
    for r in rows:
        yield f"{r['name']:<{width}}  {r['faces']:>5}  {r['images']:>6}"


def calibration_text(c: dict) -> Iterable[str]:
    """One calibration (:meth:`facesearch.search.calibration.Calibration.as_dict`)."""
    how = {"gallery": f"estimated from {c['samples']} enrolled faces against the other identities",
           "strangers": f"estimated from {c['strangers']} stranger photo(s)",
           "gallery+strangers": f"estimated from {c['samples']} enrolled faces and stranger photos "
                                f"({c['strangers']} strangers)",
           "gallery-maxima": f"the best scores of {c['samples']} enrolled faces against the other identities",
           "lfw": "from strangers' scores measured on LFW"}.get(c["method"], c["method"])
    yield (f"Threshold {c['threshold']:.3f}: names about {100 * c['fpir']:g}% of strangers among "
           f"{c['identities']} enrolled identit{_plural(c['identities'], 'y', 'ies')} ({how}).")
    if c.get("note"):
        yield f"  {c['note']}"


def threshold_text(d: dict) -> Iterable[str]:
    """The threshold line of ``list`` and ``info``, from :meth:`Gallery.info`'s dict."""
    c = d["calibration"]
    if c is None:
        yield f"threshold {d['threshold']:.3f} (fixed default; run `facesearch calibrate` to fit it to this gallery)"
        return
    yield (f"threshold {c['threshold']:.3f}, calibrated for FPIR {100 * c['fpir']:g}% at {c['identities']} "
           f"identit{_plural(c['identities'], 'y', 'ies')} ({c['method']})")
    if c.get("note"):
        yield f"  {c['note']}"


def info_text(d: dict) -> Iterable[str]:
    yield f"gallery     {d['home']}"
    yield f"model       {d['model']}"
    yield f"identities  {d['identities']}"
    yield f"faces       {d['faces']}"
    yield from threshold_text(d)


def removed_text(d: dict) -> Iterable[str]:
    yield f"Removed {d['removed']} ({d['faces']} face(s))."


def renamed_text(d: dict) -> Iterable[str]:
    yield f"Renamed {d['renamed']} to {d['to']}."


def reindex_text(d: dict) -> Iterable[str]:
    yield (f"Rebuilt the index: {d['faces']} face(s), {d['identities']} "
           f"identit{_plural(d['identities'], 'y', 'ies')} ({d['kind']} search).")


def migrate_text(d: dict) -> Iterable[str]:
    yield (f"Copied {d['identities']} identit{_plural(d['identities'], 'y', 'ies')}, {d['photos']} photo(s), "
           f"{d['faces']} face(s) and {d['api_keys']} API key(s) to {d['destination']}.")
    yield f"Checked: same people and counts, same answers on {d['checked_faces']} sampled face(s)."


def models_text(d: dict) -> Iterable[str]:
    e = d["embedder"]
    yield f"embedder  {e['model']}\n  path    {e['path']}\n  sha256  {e['sha256']}\n  source  {e['source']}"
    yield f"detector  MTCNN (mtcnn {d['detector']['package']}, weights inside the package)"


# -- server ----------------------------------------------------------------------------------------

def key_created_text(d: dict) -> Iterable[str]:
    yield d["key"]
    yield (f"(a {d['role']} key, id {d['id']}{', ' + repr(d['name']) if d['name'] else ''}; shown only now: "
           "the gallery keeps only its hash)")


def keys_text(rows: list[dict]) -> Iterable[str]:
    if not rows:
        yield "No API keys."
        return
    yield f"{'id':<12}  {'role':<5}  {'created':<20}  {'revoked':<20}  name"
    for r in rows:
        yield f"{r['id']:<12}  {r['role']:<5}  {r['created_at']:<20}  {r['revoked_at'] or '-':<20}  {r['name']}"


def key_revoked_text(d: dict) -> Iterable[str]:
    yield f"Revoked key {d['id']} ({d['role']}{', ' + repr(d['name']) if d['name'] else ''})."


def http_load_text(d: dict) -> Iterable[str]:
    m = d["machine"]
    yield (f"Machine: {m['cpu']}, {m['usable_cores']} usable of {m['cores']} cores, load average "
           f"{m['load_average']} -> {m.get('load_average_end')}")
    w = d["warm"]
    yield (f"  identify {d['photo_name']}: HTTP p50 {w['http']['p50_ms']:.0f} ms, warm Python API p50 "
           f"{w['python']['p50_ms']:.0f} ms: {w['ratio_p50']:.2f}x (alternating, {w['http']['repeats']} each)")
    for row in d["load"]:
        writes = f", {row['writes']} enroll+remove ({row['write_errors']} failed)" if row["writes"] or row["write_errors"] else ""
        yield (f"  {row['name']:<25} {row['clients']} x {row['requests']:<3} {row['throughput_rps']:6.2f} req/s, "
               f"p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, {row['errors']} error(s), "
               f"mean batch {row['mean_batch'] if row['mean_batch'] is not None else '-'}, "
               f"server CPU {row['cpu_ms_per_request'] if row['cpu_ms_per_request'] is not None else '-'} ms/request"
               f"{writes}")
    if d.get("speedup") is not None:
        yield f"  {d['clients']} clients get {d['speedup']:.2f}x the throughput of one"
    if d.get("batching_gain") is not None:
        yield f"  batching on vs off at {d['clients']} clients: {d['batching_gain']:.2f}x the throughput"
    r = d["memory"]
    yield f"  server memory (RSS): {', '.join(f'{k} {v:.0f} MB' for k, v in r.items() if v is not None)}"
    if d.get("memory_growth_mb") is not None:
        yield f"  memory growth from the first round to the last: {d['memory_growth_mb']:+.0f} MB"
    yield f"  errors in all: {d['errors']}"
    c = d["cli"]
    yield f"  `facesearch --server URL query` end to end: median {c['median_s']:.2f} s ({len(c['runs_s'])} runs)"


# -- benchmarks ----------------------------------------------------------------------------------

def lfw_text(d: dict) -> Iterable[str]:
    for r in d["rows"]:
        yield (f"LFW verification [{r['embedder']}, {r['align']}{', flip' if r['flip'] else ''}], "
               f"{r['pairs']} pairs in {len(r['fold_accuracies'])} fold(s), subtract-mean={r['subtract_mean']}")
        yield f"  accuracy     {100 * r['accuracy']:.2f}% +- {100 * r['accuracy_std']:.2f}"
        for far, label in (("0.001", "0.1%"), ("0.01", "1%  ")):
            yield f"  TAR@FAR={label} {100 * r['tar_at_far'][far]:.2f}% (threshold {r['threshold_at_far'][far]:.3f})"
        yield f"  threshold    {sum(r['thresholds']) / len(r['thresholds']):.3f} (best accuracy, mean over folds)"
        if r["embedder"] == "facenet":
            at = r["at_default_threshold"]
            yield (f"  at the default threshold {at['threshold']:.2f}: TAR {100 * at['tar']:.2f}%, "
                   f"FAR {100 * at['far']:.2f}%")
        yield f"  failures     {r['failed_pairs']} pair(s), {r['failed_photos']} photo(s) without a face"
    if d.get("error_ratio_dlib_over_facenet") is not None:
        yield f"dlib makes {d['error_ratio_dlib_over_facenet']:.2f}x the errors of facenet"
    for name, path in d.get("files", {}).items():
        yield f"  {name}: {path}"


def identify_text(d: dict) -> Iterable[str]:
    yield (f"Open-set identification: {d['identities']} enrolled identities ({d['gallery_photos']} photos, "
           f"{d['gallery_no_face']} without a face), {d['known_probes']} known probes, "
           f"{d['unknown_probes']} unknown probes")
    if d.get("input", "full") != "full" or d.get("aligned"):
        how = f"--aligned {d['aligned']}" if d.get("aligned") else (
            "read as photos" if d.get("crop_photos") is False else "crops recognised")
        yield f"  input: {d.get('input', 'full')} ({how})"
    width = max([10] + [len(m["matcher"]) for m in d["matchers"]])
    yield (f"{'matcher':<{width}} {'rank-1':>6} {'rank-5':>6} {'DIR@FPIR1%':>10} {'DIR@FPIR10%':>11}   "
           f"at threshold {d['threshold']:.2f}: {'known ok':>8} {'unknown rejected':>16}")
    for m in d["matchers"]:
        f1, f10, at = m["dir_at_fpir"]["0.01"], m["dir_at_fpir"]["0.1"], m["at_threshold"]
        yield (f"{m['matcher']:<{width}} {_pct(m['rank1']):>6} {_pct(m['rank5']):>6} {_pct(f1['dir']):>10} "
               f"{_pct(f10['dir']):>11}   {'':>22}{_pct(at['known_accuracy']):>8} "
               f"{_pct(at['unknown_rejection']):>16}")
    yield "  (percentages; DIR at FPIR uses the threshold that lets that fraction of unknown probes through)"
    yield (f"  failures: {d['known_no_face']} known probe(s) without a face (counted wrong); "
           f"{d['unknown_no_face']} unknown probe(s) without a face (left out of FPIR and rejection, "
           f"not counted as rejected)")
    if d.get("det_png"):
        yield f"  DET curve: {d['det_png']}"


def calibration_bench_text(d: dict) -> Iterable[str]:
    yield (f"Calibrated threshold on LFW: realised FPIR on {d['unknown_probes']} never-enrolled people "
           f"(mean and range over {d['draws']} random galleries under 1,680)")
    yield (f"{'target':>6} {'score':>8} {'identities':>10} {'+synthetic':>10} {'method':>8} {'threshold':>9} "
           f"{'realised FPIR':>13} {'x target':>8} {'range':>15} {'DIR':>6}")
    for r in d["rows"]:
        yield (f"{100 * r['fpir']:>5g}% {r['score']:>8} {r['identities']:>10} {r['distractor_identities']:>10} "
               f"{r['method']:>8} "
               f"{r['threshold_mean']:>9.3f} {_pct(r['realised_fpir_mean'], 12)}% {r['ratio_mean']:>8.2f} "
               f"{_pct(r['realised_fpir_min'], 6)}-{_pct(r['realised_fpir_max'], 5)}% {_pct(r['dir_mean'], 6)}")


def speed_text(d: dict) -> Iterable[str]:
    m = d["machine"]
    yield (f"Machine: {m['cpu']}, {m['usable_cores']} usable of {m['cores']} cores, load average "
           f"{m['load_average']} -> {m.get('load_average_end')}{' (quick run: rough figures)' if d['quick'] else ''}")
    by = ", ".join(f"{name} {rate:.1f}" for name, rate in d["matmul"].get("by", {}).items())
    yield (f"  float32 matmul ceiling   {d['matmul']['gflops']:8.1f} GFLOP/s ({d['matmul']['n']}^2, best of "
           f"{d['matmul']['repeats']}; {by})")
    if "detection" in d:
        for key, label in (("lfw", "LFW 250x250"), ("photo_1080p", "1080p photo")):
            r = d["detection"][key]
            yield f"  detection {label:<14} {r['images_per_s']:8.2f} images/s ({r['ms_per_image']} ms/image)"
        paths = d["detection"].get("paths")
        if paths:
            yield (f"  detection, paths side by side ({paths['rounds']} alternating rounds; x arithmetic = time over "
                   "the networks' arithmetic at the ceiling):")
            for r in paths["rows"]:
                yield (f"    {r['photo']:<12} {r['path']:<6} {r['ms']:9.2f} ms  {r['gflop']:.3f} GFLOP "
                       f"({r['arithmetic_ms']:.2f} ms at the ceiling)  {r['x_arithmetic']:7.1f}x arithmetic  "
                       f"{r['x_onnx']:6.2f}x onnx  {r['faces']} faces")
    if "embedding" in d:
        for b in (1, 32):
            r = d["embedding"][f"batch_{b}"]
            yield (f"  embedding batch {b:<8} {r['faces_per_s']:8.2f} faces/s ({r['ms_per_face']} ms/face, "
                   f"{100 * r['fraction_of_ceiling']:.0f}% of the ceiling at {d['embedding']['gflop_per_face']} "
                   "GFLOP/face)")
        r = d["embedding"]["efficiency"]
        yield (f"  embedding efficiency     {100 * r['median_fraction']:7.0f}% of the ceiling at batch {r['batch']} "
               f"(median of {r['rounds']} alternating rounds; best round {100 * r['best_round_fraction']:.0f}%)")
        paths = d["embedding"].get("paths")
        if paths:
            yield f"  embedding, runtimes side by side ({paths['rounds']} alternating rounds):"
            for r in paths["rows"]:
                yield (f"    batch {r['batch']:<3} {r['path']:<6} {r['ms_per_face']:8.2f} ms/face  "
                       f"{100 * r['fraction_of_ceiling']:5.1f}% of the ceiling ({r['ceiling_gflops']} GFLOP/s; "
                       f"best round {100 * r['best_round_fraction']:.1f}%)")
    if "enrollment" in d:
        r = d["enrollment"]
        yield f"  enrollment (no cache)    {r['images_per_s']:8.2f} images/s ({r['images']} LFW images)"
    if "enrollment_vs_dlib" in d:
        r = d["enrollment_vs_dlib"]
        yield (f"  enrollment, alternating  facenet {r['facenet']['images_per_s']:.2f} images/s "
               f"({r['facenet']['enrolled']} enrolled), dlib {r['dlib']['images_per_s']:.2f} images/s "
               f"({r['dlib']['enrolled']} enrolled): {r['ratio']:.2f}x (median of {r['rounds']} rounds)")
    if "query_warm" in d:
        r = d["query_warm"]
        yield f"  query, warm (Python API) p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms ({r['repeats']} runs)"
        if "query_warm_reference" in d:
            r = d["query_warm_reference"]
            yield f"  query, warm, TensorFlow path p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms ({r['repeats']} runs)"
        yield (f"  query, cold process      {d['query_cold']['median_s']:.2f} s (median of "
               f"{len(d['query_cold']['runs_s'])})")
    if "startup" in d:
        for r in d["startup"].values():
            tf = {True: "imports TensorFlow", False: "no TensorFlow", None: "TensorFlow unknown"}[r["imports_tensorflow"]]
            yield f"  start-up {r['command']:<24} {r['median_s']:6.2f} s ({tf})"
    if "search" not in d:
        return
    yield "  FAISS search, one query at a time:"
    yield f"    {'faces':>9} {'kind':<5} {'build s':>8} {'p50 ms':>8} {'p95 ms':>8} {'1 thread':>8} {'recall@1':>9}"
    for r in d["search"]:
        yield (f"    {r['size']:>9} {r['kind']:<5} {r['build_s']:>8.2f} {r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f} "
               f"{r['p50_ms_1_thread']:>8.3f} {r['recall_at_1']:>9.4f}")
    yield "    (ms per query; '1 thread': p50 with FAISS on one OpenMP thread; recall@1 against exact search)"


def live_rate_text(d: dict) -> Iterable[str]:
    if d.get("faces"):
        yield f"clip: 640x480, {d['faces']} face(s)"
    yield f"{'tracking':<10}{'frames':>8}{'analysed fps':>14}{'embeddings/frame':>18}{'frame in faces@ceiling':>24}"
    for r in d["rows"]:
        yield (f"{'on' if r['tracking'] else 'off':<10}{r['frames']:>8}{r['analysed_fps']:>14.2f}"
               f"{r['embeddings_per_frame']:>18.2f}{r['faces_at_ceiling']:>24.2f}")
    yield ("(frame in faces@ceiling: an analysed frame's time over one FaceNet face's time at the float32 matmul "
           "ceiling measured in the same run; 15 fps on the reference machine is about 7)")


# -- live ------------------------------------------------------------------------------------------

def live_event_text(event: dict) -> Iterable[str]:
    """One line per track event; the summary is printed on stderr by the command, not here."""
    if event["event"] == "summary":
        return
    who = event["identity"] if event["identity"] is not None else "unknown"
    sim = "" if event["similarity"] is None else f" {event['similarity']:.2f}"
    yield (f"{event['time']:8.2f}s  frame {event['frame']:<6} track {event['track']:<3} "
           f"{event['event']:<10} {who}{sim}")


def live_summary_text(event: dict) -> str:
    return (f"{event['frames']} frames shown at {event['displayed_fps']:.1f} fps, {event['analysed']} "
            f"analysed at {event['analysed_fps']:.1f} fps, {event['dropped']} dropped for analysis, "
            f"{event['tracks']} track(s)")


# -- classifiers and dataset tools ---------------------------------------------------------------

def training_text(d: dict) -> Iterable[str]:
    yield f"Trained {d['kind']} ({d['epochs']} epochs); saved to {d['model_dir']}"
    if d.get("accuracy") is not None:
        line = f"  accuracy {100 * d['accuracy']:.1f}%"
        if "weighted_f1" in d:
            line += (f", weighted precision {100 * d['weighted_precision']:.1f}%, recall "
                     f"{100 * d['weighted_recall']:.1f}%, F1 {100 * d['weighted_f1']:.1f}%")
        yield f"{line} on {d['evaluated_on']}"
    if "box_mean_iou" in d:
        yield f"  face box: mean IoU {d['box_mean_iou']:.3f} with the detector's boxes"
    for name, path in d.get("files", {}).items():
        yield f"  {name:<28} {path}"


def crop_text(d: dict) -> Iterable[str]:
    yield (f"Cropped {d['cropped']} face(s) into {d['folder']}; {len(d['no_face'])} photo(s) without a face, "
           f"{len(d['multiple_faces'])} with several, {len(d['errors'])} error(s). Log: {d['log']}")
    for p in d["no_face"]:
        yield f"  {p}: no face found"
    for m in d["multiple_faces"]:
        yield f"  {m['path']}: {m['faces']} faces"


def export_text(d: dict) -> Iterable[str]:
    yield (f"Exported {d['exported_images']} of {d['faces']} face(s) of {d['identities']} identities to "
           f"{d['folder']} ({d['synthetic_faces']} imported average(s) and {len(d['missing_photos'])} missing "
           f"photo(s) left out of the image arrays).")


def import_text(d: dict) -> Iterable[str]:
    n = len(d["imported"])
    yield (f"Imported {n} identit{_plural(n, 'y', 'ies')} from {d['file']}; "
           f"{len(d['duplicates'])} already there.")


def split_text(d: dict) -> Iterable[str]:
    yield ("Split " + ", ".join(f"{k} {v}" for k, v in d["totals"].items())
           + f" photos; chart: {d['class_distribution_png']}")


def classify_bench_text(d: dict) -> Iterable[str]:
    yield (f"Closed-set identification: {d['identities']} identities, {d['train_faces']} enrolled faces, "
           f"{d['test_faces']} test faces (threshold {d['threshold']:.2f} for matchers and rerankers)")
    yield f"{'method':<22} {'role':<9} {'accuracy':>8} {'precision':>9} {'recall':>7} {'F1':>6} {'unknown':>7}"
    for r in d["rows"]:
        yield (f"{r['method']:<22} {r['role']:<9} {100 * r['accuracy']:8.1f} {100 * r['weighted_precision']:9.1f} "
               f"{100 * r['weighted_recall']:7.1f} {100 * r['weighted_f1']:6.1f} {r['unknown']:>7}"
               + (f"   changed {r['changed']}" if "changed" in r else "")
               + (f"   strangers left unknown {100 * r['unknown_rejected']:.1f}%"
                  if r.get("unknown_rejected") is not None else ""))
    yield "  (percentages; precision/recall/F1 weighted by support; unknown answers count as wrong)"
    if d["unknown"]:
        yield f"  strangers: {d['unknown_faces']} faces of people not enrolled, from {d['unknown']}"


def backend_scale_text(d: dict) -> Iterable[str]:
    yield (f"Storage backends side by side: float32 matmul ceiling {d['matmul']['gflops']:.0f} GFLOP/s on "
           f"{d['cpu_count']} cores; live insert = {d['live_faces']} faces in writes of {d['live_batch']}")
    yield (f"{'faces':>9} {'kind':<7} {'backend':<9} {'index':<14} {'bulk f/s':>9} {'live f/s':>9} "
           f"{'query p50/p95 ms':>18} {'n':>4} {'recall@1':>8} {'@10':>6} {'disk MB':>8} {'B/face':>7}")
    for r in d["rows"]:
        yield (f"{r['size']:>9} {r['kind']:<7} {r['backend']:<9} {r['index_kind']:<14} {r['bulk_faces_per_s']:>9.0f} "
               f"{r['live_faces_per_s']:>9.0f} {r['query_p50_ms']:>9.1f}/{r['query_p95_ms']:<8.1f} {r['queries']:>4} "
               f"{r['recall_at_1']:>8.3f} {r['recall_at_10']:>6.3f} {r['disk_mb']:>8.0f} {r['bytes_per_face']:>7}")
        if "ivfflat_build_s" in r:
            yield (f"{'':>9} index build over {r['size']} faces: HNSW {r['hnsw_build_s']:.1f} s, "
                   f"IVFFlat ({r['ivfflat_lists']} lists) {r['ivfflat_build_s']:.1f} s")


def scale_text(d: dict) -> Iterable[str]:
    yield (f"Gallery scale: {d['real_people']} real people among synthetic distractors; "
           f"float32 matmul ceiling {d['matmul']['gflops']:.0f} GFLOP/s on {d['cpu_count']} cores")
    yield (f"{'faces':>9} {'kind':<7} {'index':<5} {'query p50/p95 ms':>17} {'batch p50 ms':>12} {'recall@1':>8} "
           f"{'@10':>6} {'open s':>6} {'enroll s (api/cmd)':>18} {'remove s':>8} {'RSS MB':>6} {'disk MB':>8}")
    for r in d["rows"]:
        yield (f"{r['size']:>9} {r['kind']:<7} {r['index_kind']:<5} "
               f"{r['query_one']['p50_ms']:>8.2f}/{r['query_one']['p95_ms']:<8.2f} "
               f"{r['query_batch']['p50_ms']:>12.1f} {r['recall_at_1']:>8.3f} {r['recall_at_10']:>6.3f} "
               f"{r['open_s']:>6.2f} {r['enroll_api_s']:>8.2f}/{r['enroll_command_s']:<9.2f} {r['remove_s']:>8.2f} "
               f"{max(r['enroll_command_peak_rss_mb'], r['query_process_peak_rss_mb']):>6} {r['disk_mb']:>8.0f}")
        yield (f"{'':>9} ceiling {r['matmul_gflops']:.0f} GFLOP/s, load {r['load_average'][0]:.1f}: one query p50 = "
               f"{r['query_one']['p50_ceiling_gflop']:.3f} GFLOP of matmul work; index {r['index_kind']}"
               + (f", {r['cells']} cells, nprobe {r['nprobe']}" if r.get('cells') else ""))


# -- people --------------------------------------------------------------------------------------

def clusters_text(d: dict) -> Iterable[str]:
    yield (f"{d['clusters']} candidate {_plural(d['clusters'], 'person', 'people')} "
           f"({d['new_clusters']} new, {d['attached']} face(s) joined one); {d['waiting']} face(s) waiting.")


def scan_text(d: dict) -> Iterable[str]:
    faces = sum(s["faces"] for s in d["scanned"])
    yield (f"Scanned {len(d['scanned'])} photo(s): {faces} face(s), {len(d['identified'])} identified, "
           f"{d['unknown']} unknown; {len(d['already_scanned'])} already scanned, {len(d['no_face'])} without a face, "
           f"{len(d['errors'])} error(s).")
    for i in d["identified"]:
        yield f"  {i['path']}: {i['identity']} {i['similarity']:.2f}"
    if d["clusters"]:
        yield from clusters_text(d["clusters"])


def people_text(d: dict) -> Iterable[str]:
    yield (f"{d['photos']} photo(s) scanned, {d['faces']} face(s); {len(d['clusters'])} candidate "
           f"{_plural(len(d['clusters']), 'person', 'people')}, {d['waiting']} unknown face(s) waiting.")
    if d["clusters"]:
        yield f"{'person':>7}  faces  photos  faces shown"
    for c in d["clusters"]:
        hint = f"   looks like {c['suggestion']['name']} ({c['suggestion']['faces']}/{c['faces']})" \
            if c.get("suggestion") else ""
        yield f"{c['id']:>7}  {c['faces']:>5}  {c['photos']:>6}  {' '.join(str(f) for f in c['sample'])}{hint}"
    for p in d["people"]:
        yield f"  {p['name']}: {p['faces']} face(s) in {p['photos']} photo(s)"
    if d.get("sheet"):
        yield f"Contact sheet: {d['sheet']}"


def cluster_text(d: dict) -> Iterable[str]:
    yield f"Candidate person {d['id']}: {len(d['faces'])} face(s)"
    for f in d["faces"]:
        yield f"  face {f['face']:>6}  {f['box']}  {f['path']}"


def named_text(d: dict) -> Iterable[str]:
    how = "as a new person" if d["created"] else "merged into the enrolled person"
    yield f"Named candidate person {d['cluster']} {d['name']!r} {how}: {d['named']} face(s) enrolled."
    if d["left_out"]:
        yield f"  left out (not {d['name']}, or their photo already has {d['name']}): {d['left_out']}"
    if d.get("identified"):
        yield f"  {len(d['identified'])} waiting face(s) now identified as {d['name']}: {d['identified']}"


def rejected_text(d: dict) -> Iterable[str]:
    moved = " and taken back from them" if d["was"] != "unknown" else ""
    yield f"Face {d['face']} is not {d['name']!r}: recorded{moved}."


def people_split_text(d: dict) -> Iterable[str]:
    yield f"Moved {len(d['faces'])} face(s) from candidate person {d['cluster']} to {d['new_cluster']}."


def person_photos_text(d: dict) -> Iterable[str]:
    yield f"{d['name']}: {len(d['photos'])} scanned photo(s)"
    for p in d["photos"]:
        for f in p["faces"]:
            yield f"  {p['path']}  {f['box']}  ({f['state']})"


def undone_text(d: dict) -> Iterable[str]:
    yield f"Undid action {d['undone']}: {d['summary']}."


def history_text(d: dict) -> Iterable[str]:
    if not d["actions"]:
        yield "No actions yet."
    for a in d["actions"]:
        yield f"{a['id']:>5}  {a['at']}  {a.get('summary', a['kind'])}" + ("  (undone)" if a["undone"] else "")


def cluster_bench_text(d: dict) -> Iterable[str]:
    m = d["machine"]
    yield (f"{d['photos']} photos of {d['people']} people ({d['people_seen_once']} seen once), {d['faces']} faces, "
           f"{d['labelled_faces']} labelled; {d['no_face']} photos without a face, {d['unreadable']} unreadable")
    yield f"Machine: {m['cpu']}, load average {m['load_average']} -> {m['load_average_end']}"
    yield (f"{'method':<9} {'pair P':>7} {'pair R':>7} {'pair F1':>7} {'B3 P':>6} {'B3 R':>6} {'B3 F1':>6} "
           f"{'merged 1x':>9} {'same photo':>10} {'clusters':>8} {'seconds':>8} {'x adopted':>9}")
    for r in d["rows"]:
        p, b = r["pairwise"], r["bcubed"]
        yield (f"{r['method']:<9} {_pct(p['precision'], 7)} {_pct(p['recall'], 7)} {_pct(p['f1'], 7)} "
               f"{_pct(b['precision'], 6)} {_pct(b['recall'], 6)} {_pct(b['f1'], 6)} {r['merged_singletons']:>9} "
               f"{r['same_photo_pairs']:>10} {r['clusters']:>8} {r['seconds']:>8.2f} {r['x_adopted_time'] or 0:>9.2f}")
    t = d["targets"]
    yield (f"Targets: pairwise precision >= 99%: {'met' if t['pairwise_precision_met'] else 'MISSED'}; "
           f"best BCubed F1 of all rows: {'met' if t['adopted_has_best_bcubed_f1'] else 'MISSED'}")


def people_bench_text(d: dict) -> Iterable[str]:
    yield (f"{d['root']}: {d['photos']} photos, {d['faces']} faces scanned in {d['scan_s']:.1f} s; re-scan "
           f"{d['rescan_s']:.2f} s ({100 * d['rescan_share']:.1f}% of the first)")
    yield f"{len(d['clusters'])} candidate people, {d['waiting']} faces waiting:"
    for c in d["clusters"]:
        yield f"  #{c['id']:<4} {c['faces']:>4} faces  {c['person']:<16} purity {_pct(c['purity'])}%"
    yield "Share of each person's faces in their largest candidate: " + \
        ", ".join(f"{k} {_pct(v).strip()}%" for k, v in sorted(d["recall"].items()))
    yield (f"query on {d['probes']} {d['probe']} photos: {_pct(d['people_accuracy']).strip()}% right after naming each "
           f"person's largest candidate; {_pct(d['suggested_accuracy']).strip()}% after accepting {d['suggested']} "
           f"suggested merge(s) ({d['suggested_wrong']} wrong); {_pct(d['all_named_accuracy']).strip()}% once every "
           f"candidate is named; {_pct(d['enroll_accuracy']).strip()}% by the enroll path")
