"""Query embedding and `pgsearch search` start-up: all-MiniLM-L6-v2 on ONNX Runtime vs torch.

    python benchmarks/query_embedding.py [--queries 200] [--repeat 3]

Everything runs in a temporary directory: the ONNX export goes to a fresh user cache
(``XDG_CACHE_HOME``), the embedded store to a fresh ``PGSEARCH_DATA_DIR`` (``pgsearch migrate``,
then ``pgsearch ingest pgsearch/samples/corpus.jsonl``). Measured:

- the one-time export (a subprocess: it imports torch);
- import time of each path, and a cold first query (import + load + one embedding);
- query embedding latency on SciFact queries, one at a time, the query cache off, each backend
  in a process of its own; and the cosine agreement of their vectors;
- wall time and peak RSS of ``pgsearch search ... --mode hybrid`` and ``--mode text`` as
  subprocesses (peak RSS from ``os.wait4``: the rusage of that child and its waited-for
  children). The torch row runs the same CLI with onnxruntime hidden, which is the fallback.

Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pgsearch.embedders.sentence_transformers import Backend

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ROOT.parent / "shared" / "data" / "scifact" / "queries.jsonl"
CORPUS = ROOT / "pgsearch" / "samples" / "corpus.jsonl"
SPEC = "sentence-transformers:all-MiniLM-L6-v2"
SEARCH = "how do robots explore other planets"
TARGETS = {"p50_ms": 3.0, "wall_s": 1.5, "rss_mb": 300.0, "cosine": 0.999}
HIDE_ONNX = "import sys; sys.modules['onnxruntime'] = None; "


def run_python(code: str, env: dict[str, str]) -> tuple[float, str]:
    """Run ``python -c code``; return wall seconds and stdout."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: python -c {code!r}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a command; return wall seconds, peak RSS in MB and stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(argv)}\n{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, stdout


def cli(*words: str, torch: bool = False) -> list[str]:
    code = (HIDE_ONNX if torch else "import sys; ") + (
        "from pgsearch.cli import main; sys.argv[0] = 'pgsearch'; raise SystemExit(main())"
    )
    return [sys.executable, "-c", code, *words]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def latency_worker(backend: Backend, count: int, out: str) -> None:
    """Embed ``count`` SciFact queries one at a time on one backend; save times and vectors.

    Each backend gets a process of its own: torch's idle OpenMP threads spin for a while after
    each call and would steal the CPU from onnxruntime in a shared process.
    """
    from pgsearch.embedders.sentence_transformers import SentenceTransformerEmbedder

    queries = [json.loads(line)["text"] for line in QUERIES.open(encoding="utf-8")][:count]
    embedder = SentenceTransformerEmbedder(backend=backend, query_cache_size=0)
    for query in queries[:10]:
        embedder.embed_query(query)
    times, vectors = [], []
    for query in queries:
        start = time.perf_counter()
        vectors.append(embedder.embed_query(query))
        times.append((time.perf_counter() - start) * 1000)
    np.savez(out, times=np.array(times), vectors=np.stack(vectors))


def embedding_latency(count: int, env: dict[str, str], tmp: Path) -> dict[str, np.ndarray]:
    results = {}
    for backend in ("onnx", "torch"):
        out = tmp / f"{backend}.npz"
        argv = [sys.executable, __file__, "--worker", backend, "--queries", str(count), str(out)]
        subprocess.run(argv, env=env, check=True, capture_output=True)
        with np.load(out) as saved:
            results[f"{backend}_times"] = saved["times"]
            results[f"{backend}_vectors"] = saved["vectors"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each subprocess timing")
    parser.add_argument("--worker", choices=["onnx", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("out", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        latency_worker(args.worker, args.queries, args.out)
        return

    with tempfile.TemporaryDirectory(prefix="pgsearch-query-bench-") as tmp:
        env = {
            **os.environ,
            "XDG_CACHE_HOME": str(Path(tmp) / "cache"),
            "PGSEARCH_DATA_DIR": str(Path(tmp) / "store"),
            "PGSEARCH_EMBEDDER": SPEC,
            "HF_HUB_OFFLINE": "1",
        }
        env.pop("PGSEARCH_DATABASE_URL", None)

        print("exporting all-MiniLM-L6-v2 to ONNX ...", flush=True)
        export_wall, export_out = run_python(
            "from pgsearch.embedders.sentence_transformers import SentenceTransformerEmbedder\n"
            "e = SentenceTransformerEmbedder(backend='onnx')\n"
            "assert e.backend == 'onnx'\n"
            "import json; from pgsearch.embedders.onnx import MANIFEST, default_cache_root\n"
            "manifest = next(default_cache_root().glob('*/' + MANIFEST))\n"
            "print(json.loads(manifest.read_text())['export_seconds'])\n",
            env,
        )
        export_inner = float(export_out.strip().splitlines()[-1])

        print("import and cold-start times ...", flush=True)
        timer = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
        imports = {
            "onnx": "import onnxruntime, tokenizers",
            "torch": "import sentence_transformers",
        }
        import_s = {
            label: statistics.median(
                float(run_python(timer.format(code), env)[1]) for _ in range(args.repeat)
            )
            for label, code in imports.items()
        }
        cold = (
            "from pgsearch.embedders import load_embedder; "
            f"load_embedder({SPEC!r}).embed_query('first query')"
        )
        cold_s = {
            "onnx": statistics.median(
                float(run_python(timer.format(cold), env)[1]) for _ in range(args.repeat)
            ),
            "torch": statistics.median(
                float(run_python(HIDE_ONNX + timer.format(cold), env)[1])
                for _ in range(args.repeat)
            ),
        }

        print("store: migrate, ingest the sample corpus ...", flush=True)
        run_measured(cli("migrate"), env)
        ingest_wall, _, ingest_out = run_measured(cli("ingest", str(CORPUS)), env)

        print("pgsearch search ...", flush=True)
        runs: dict[str, list[tuple[float, float]]] = {}
        outputs: dict[str, str] = {}
        plan = [("hybrid", "onnx"), ("text", "onnx"), ("hybrid", "torch")]
        for mode, backend in plan:
            argv = (
                [str(Path(sys.executable).parent / "pgsearch"), "search", SEARCH, "--mode", mode]
                if backend == "onnx"
                else cli("search", SEARCH, "--mode", mode, torch=True)
            )
            run_measured(argv, env)  # warm the page cache and the embedded server's files
            results = [run_measured(argv, env) for _ in range(args.repeat)]
            runs[f"{mode}/{backend}"] = [(wall, rss) for wall, rss, _ in results]
            outputs[f"{mode}/{backend}"] = results[-1][2]

        print("query embedding latency ...", flush=True)
        latency = embedding_latency(args.queries, env, Path(tmp))

    times = {label: list(latency[f"{label}_times"]) for label in ("onnx", "torch")}
    cosine_min = float((latency["onnx_vectors"] * latency["torch_vectors"]).sum(axis=1).min())
    print()
    print(f"query embedding ({len(times['onnx'])} SciFact queries, one at a time, cache off,")
    print("each backend in a process of its own)")
    print(f"{'backend':<8} {'p50 ms':>8} {'p95 ms':>8}")
    for label in ("onnx", "torch"):
        print(
            f"{label:<8} {percentile(times[label], 50):>8.2f} {percentile(times[label], 95):>8.2f}"
        )
    p50 = percentile(times["onnx"], 50)
    verdict = "met" if p50 <= TARGETS["p50_ms"] else "MISSED"
    print(f"onnx p50 target <= {TARGETS['p50_ms']} ms: {verdict}")
    print(
        f"cosine onnx vs torch, min over the queries: {cosine_min:.6f} "
        f"(target >= {TARGETS['cosine']}: {'met' if cosine_min >= TARGETS['cosine'] else 'MISSED'})"
    )
    print()
    print(f"export to ONNX (once): {export_wall:.1f} s wall, {export_inner:.1f} s in the exporter")
    print(f"{'path':<8} {'import s':>9} {'cold first query s':>19}")
    for label, what in (("onnx", "onnxruntime+tokenizers"), ("torch", "sentence_transformers")):
        print(f"{label:<8} {import_s[label]:>9.2f} {cold_s[label]:>19.2f}   ({what})")
    print()
    print(f"pgsearch ingest of {CORPUS.name} (onnx): {ingest_wall:.1f} s, {ingest_out.strip()}")
    print(f'pgsearch search "{SEARCH}" (median of {args.repeat} runs)')
    print(f"{'mode':<8} {'backend':<8} {'wall s':>7} {'peak RSS MB':>12}  target")
    for key, measured in runs.items():
        mode, backend = key.split("/")
        wall = statistics.median(w for w, _ in measured)
        rss = statistics.median(r for _, r in measured)
        verdict = ""
        if key == "hybrid/onnx":
            ok = wall <= TARGETS["wall_s"] and rss <= TARGETS["rss_mb"]
            verdict = f"<= {TARGETS['wall_s']} s, <= {TARGETS['rss_mb']:.0f} MB: " + (
                "met" if ok else "MISSED"
            )
        print(f"{mode:<8} {backend:<8} {wall:>7.2f} {rss:>12.0f}  {verdict}")
    same = outputs["hybrid/onnx"] == outputs["hybrid/torch"]
    print(f"hybrid results identical on both backends: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
