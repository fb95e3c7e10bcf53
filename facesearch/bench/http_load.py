"""``facesearch bench serve``: the server under load on loopback, against the warm Python API.

One run, on whatever else the machine runs (the load average is reported beside the figures):

* **warm**: identify of one photo over HTTP (one client) and through :meth:`Gallery.query` in
  this process, alternating, so both see the same load; p50 of each and their ratio;
* **load**: ``clients`` threads sending identify requests back to back, in alternating rounds:
  one client, ``clients`` clients, and (with ``compare_batching``) ``clients`` clients on a second
  server that does not batch; then ``clients`` clients plus one enrolling and removing a person in
  a loop. Latency p50/p95, throughput (the median of the rounds), errors, the server's mean batch;
* **memory**: the server's resident memory after each round;
* **cli**: wall time of whole ``facesearch --server URL query PHOTO`` processes.

The server runs as its own process (``python -m facesearch serve --port 0``), listening on
127.0.0.1 only, on a temporary gallery of ``fixtures/known``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Sequence

import numpy as np

from facesearch.bench.speed import machine, timed_processes
from facesearch.errors import FaceSearchError
from facesearch.gallery import Gallery
from facesearch.models.analysis import FaceAnalysis
from facesearch.server.client import RemoteGallery

log = logging.getLogger(__name__)

QUERY_PHOTO = Path("fixtures") / "queries" / "obama1.jpg"
KNOWN = Path("fixtures") / "known"
#: A photo enrolled and removed again by the writer of the mixed load.
ENROLL_PHOTO = Path("fixtures") / "queries" / "alex_lacamoire1.jpg"

#: Seconds the writer of the mixed load waits between two enroll + remove cycles.
WRITE_PAUSE = 1.0
#: Repetitions: (quick smoke run, normal run).
REPEATS = {"warm": (3, 20), "single": (3, 20), "cli": (1, 3)}


def _ms(seconds: Sequence[float]) -> dict:
    s = np.asarray(seconds, np.float64) * 1e3
    if not len(s):
        return {"p50_ms": None, "p95_ms": None, "repeats": 0}
    return {"p50_ms": round(float(np.percentile(s, 50)), 1), "p95_ms": round(float(np.percentile(s, 95)), 1),
            "repeats": len(s)}


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (Linux ``/proc``), else ``None``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time process ``pid`` has used so far, seconds (Linux ``/proc``), else ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class ServerProcess:
    """``python -m facesearch --home HOME serve`` on 127.0.0.1 and a free port, until :meth:`stop`."""

    def __init__(self, home: Path, *, max_batch: int = 8, workers: int = 1, timeout: float = 300) -> None:
        cmd = [sys.executable, "-m", "facesearch", "--home", str(home), "serve", "--host", "127.0.0.1", "--port", "0",
               "--max-batch", str(max_batch), "--workers", str(workers), "--log-level", "warning"]
        self.process = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        line = self.process.stderr.readline() if self.process.stderr else ""
        if " at http://" not in line:
            self.stop()
            raise FaceSearchError(f"facesearch serve did not start: {line.strip() or 'no message'}")
        self.url = line.split(" at ", 1)[1].split("/ ", 1)[0]
        # Keep reading stderr so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not _ready(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise FaceSearchError(f"{self.url}: the server did not become ready")
            time.sleep(0.2)

    def _drain(self) -> None:
        for _ in self.process.stderr or ():
            pass

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        """SIGTERM, then wait for the graceful exit; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/health/ready", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _percentiles(latencies: list[float]) -> dict:
    return {k: v for k, v in _ms(latencies).items() if k != "repeats"}


def load(url: str, photo: Path, *, clients: int, requests: int, enroll_photo: Path | None = None,
         api_key: str | None = None, name: str = "", keep_latencies: bool = False) -> dict:
    """``clients`` threads each identifying ``photo`` ``requests`` times over HTTP, back to back; with
    ``enroll_photo``, one more thread meanwhile enrolls it under a new name and removes it, then
    waits :data:`WRITE_PAUSE`, in a loop.

    Returns ``{"name", "clients", "requests", "ok", "errors", "error_messages", "p50_ms", "p95_ms",
    "throughput_rps", "wall_s", "writes", "write_errors"}``: latency over every identify request,
    throughput = identify requests answered per second of wall time; with ``keep_latencies``,
    also ``"_latencies"`` (seconds, for merging rounds).
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    done = threading.Event()
    writes = [0, 0]  # done, failed

    def client() -> None:
        gallery = RemoteGallery(url, api_key=api_key)
        for _ in range(requests):
            start = time.perf_counter()
            try:
                gallery.query(photo)
            except FaceSearchError as exc:
                with lock:
                    errors.append(str(exc))
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    def writer() -> None:
        gallery = RemoteGallery(url, api_key=api_key)
        round_ = 0
        while not done.wait(WRITE_PAUSE if round_ else 0):
            round_ += 1
            try:
                gallery.enroll([enroll_photo], f"load_test_{round_}")
                gallery.remove(f"load_test_{round_}")
                writes[0] += 1
            except FaceSearchError as exc:
                writes[1] += 1
                with lock:
                    errors.append(f"write: {exc}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    write_thread = threading.Thread(target=writer) if enroll_photo is not None else None
    start = time.perf_counter()
    if write_thread:
        write_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done.set()
    if write_thread:
        write_thread.join()
    row = {"name": name, "clients": clients, "requests": requests, "ok": len(latencies),
           "errors": len(errors), "error_messages": sorted(set(errors))[:5], **_percentiles(latencies),
           "throughput_rps": round(len(latencies) / wall, 3), "wall_s": round(wall, 2),
           "writes": writes[0], "write_errors": writes[1]}
    if keep_latencies:
        row["_latencies"] = latencies
    return row


def warm_comparison(url: str, gallery: Gallery, photo: Path, repeats: int) -> dict:
    """p50 of identify over HTTP (one client) and of the warm :meth:`Gallery.query`, alternating."""
    remote = RemoteGallery(url)
    remote.query(photo)
    gallery.query(photo)
    http, python = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        remote.query(photo)
        http.append(time.perf_counter() - start)
        start = time.perf_counter()
        gallery.query(photo)
        python.append(time.perf_counter() - start)
    h, p = _ms(http), _ms(python)
    return {"http": h, "python": p, "ratio_p50": round(h["p50_ms"] / p["p50_ms"], 3)}


def cli_query_time(url: str, photo: Path, repeats: int) -> dict:
    """Wall time of whole ``facesearch --server URL query PHOTO`` processes.

    Raises:
        FaceSearchError: the command failed.
    """
    cmd = [sys.executable, "-m", "facesearch", "--server", url, "query", "--json", str(photo)]
    times, outputs = timed_processes(cmd, repeats, "facesearch --server query")
    for out in outputs:
        json.loads(out)
    return {"runs_s": [round(t, 3) for t in times], "median_s": round(float(np.median(times)), 3)}


def _batching(url: str) -> dict:
    return RemoteGallery(url).info()["batching"]


def _row(server: ServerProcess, photo: Path, **kwargs) -> dict:
    """:func:`load`, plus the server's mean batch and CPU time per request over it. CPU time per
    request does not depend on how much of the machine other processes take, throughput does."""
    before, cpu = _batching(server.url), cpu_seconds(server.pid)
    row = load(server.url, photo, **kwargs)
    after, cpu_after = _batching(server.url), cpu_seconds(server.pid)
    photos, batches = after["photos"] - before["photos"], after["batches"] - before["batches"]
    row["mean_batch"] = round(photos / batches, 2) if batches else None
    row["cpu_ms_per_request"] = (round(1000 * (cpu_after - cpu) / row["ok"], 1)
                                 if cpu is not None and cpu_after is not None and row["ok"] else None)
    return row


def _merge(rows: list[dict]) -> dict:
    """One row for several rounds of the same load: counts added, throughput the median of the
    rounds' (each round alone is at the mercy of whatever else the machine runs), latency
    percentiles over every request of every round."""
    first = rows[0]
    latencies = [v for r in rows for v in r.pop("_latencies")]
    batched = [r["mean_batch"] for r in rows if r["mean_batch"] is not None]
    cpu = [r["cpu_ms_per_request"] for r in rows if r["cpu_ms_per_request"] is not None]
    return {"name": first["name"], "clients": first["clients"], "requests": sum(r["requests"] for r in rows),
            "rounds": len(rows), "ok": sum(r["ok"] for r in rows), "errors": sum(r["errors"] for r in rows),
            "error_messages": sorted({m for r in rows for m in r["error_messages"]})[:5],
            **_percentiles(latencies),
            "throughput_rps": round(float(np.median([r["throughput_rps"] for r in rows])), 3),
            "throughput_rounds": [r["throughput_rps"] for r in rows],
            "wall_s": round(sum(r["wall_s"] for r in rows), 1), "writes": sum(r["writes"] for r in rows),
            "write_errors": sum(r["write_errors"] for r in rows),
            "mean_batch": round(float(np.mean(batched)), 2) if batched else None,
            "cpu_ms_per_request": round(float(np.median(cpu)), 1) if cpu else None}


def run(data_dir: str | os.PathLike, *, clients: int = 8, requests: int = 50, rounds: int = 3, quick: bool = False,
        compare_batching: bool = True, max_batch: int = 8, workers: int = 1) -> dict:
    """The figures; the dict ``facesearch bench serve --json`` prints.

    The loads run in ``rounds`` alternating rounds (one client; ``clients`` clients; the same on a
    server that does not batch, which runs beside the first), each client sending its share of
    ``requests`` per round; then once ``clients`` clients with a writer.
    """
    data_dir = Path(data_dir)
    photo = data_dir / QUERY_PHOTO
    for needed in (photo, data_dir / KNOWN, data_dir / ENROLL_PHOTO):
        if not needed.exists():
            raise FaceSearchError(f"{needed}: not found; pass --data, the folder holding fixtures/")
    n = {k: v[0 if quick else 1] for k, v in REPEATS.items()}
    per_round = -(-requests // rounds)
    single = -(-n["single"] // rounds)
    report: dict = {"benchmark": "http", "quick": quick, "photo": str(photo), "photo_name": photo.name,
                    "clients": clients, "requests": per_round * rounds, "rounds": rounds, "max_batch": max_batch,
                    "workers": workers, "machine": machine(), "load": [], "memory": {}}
    analysis = FaceAnalysis()
    with tempfile.TemporaryDirectory(prefix="facesearch-http-") as tmp:
        home = Path(tmp) / "gallery"
        with Gallery(home, analysis=analysis) as gallery:
            gallery.enroll([data_dir / KNOWN])
            plain_home = Path(tmp) / "plain"
            if compare_batching:
                shutil.copytree(home, plain_home)
            server = ServerProcess(home, max_batch=max_batch, workers=workers)
            plain = ServerProcess(plain_home, max_batch=1, workers=workers) if compare_batching else None
            try:
                log.info("warm: HTTP and the Python API, alternating")
                report["warm"] = warm_comparison(server.url, gallery, photo, n["warm"])
                if plain:
                    RemoteGallery(plain.url).query(photo)
                report["memory"]["warm"] = rss_mb(server.pid)
                rows: dict[str, list[dict]] = {}
                for r in range(rounds):
                    plan = [("1 client", server, 1, single), (f"{clients} clients", server, clients, per_round)]
                    if plain:
                        plan.append((f"{clients} clients, no batching", plain, clients, per_round))
                    for name, target, k, m in plan:
                        log.info("round %d: %s", r + 1, name)
                        rows.setdefault(name, []).append(_row(target, photo, clients=k, requests=m, name=name,
                                                              keep_latencies=True))
                    report["memory"][f"after round {r + 1}"] = rss_mb(server.pid)
                report["load"] = [_merge(v) for v in rows.values()]
                log.info("load with a writer")
                mixed = _row(server, photo, clients=clients, requests=per_round, name=f"{clients} clients + enroll",
                             enroll_photo=data_dir / ENROLL_PHOTO, keep_latencies=True)
                report["load"].append(_merge([mixed]))
                report["memory"]["after the writer"] = rss_mb(server.pid)
                log.info("cli")
                report["cli"] = cli_query_time(server.url, photo, n["cli"])
            finally:
                report["server_exit"] = server.stop()
                if plain:
                    plain.stop()
    named = {r["name"]: r for r in report["load"]}
    one, many = named["1 client"], named[f"{clients} clients"]
    report["speedup"] = round(many["throughput_rps"] / one["throughput_rps"], 3) if one["throughput_rps"] else None
    unbatched = named.get(f"{clients} clients, no batching")
    report["batching_gain"] = (round(many["throughput_rps"] / unbatched["throughput_rps"], 3)
                               if unbatched and unbatched["throughput_rps"] else None)
    report["errors"] = sum(r["errors"] + r["write_errors"] for r in report["load"])
    memory = [v for k, v in report["memory"].items() if k.startswith("after round") and v is not None]
    report["memory_growth_mb"] = round(memory[-1] - memory[0], 1) if len(memory) > 1 else None
    report["machine"]["load_average_end"] = machine()["load_average"]
    return report
