"""Redraw the sample images a published page shows, for a journal whose run's store was not kept.

    .venv/bin/python docs/results/redraw_samples.py gaussgan docs/results/gaussgan/hpo.journal \
        docs/results/gaussgan/artifacts [--processes 2]

The page's sample figure shows each kind's validated best on its seeds
(``hpo.report_figures.sample_grid_rows``), each image a trial's artifact. Those images went with
the gaussgan run's store. A trial is a function of its config document (which
rebuild_configs.py rebuilt into the same folder) on one torch and one BLAS thread, as its worker
ran it, so each trial the figure needs is trained again through ``hpo train``'s path
(``hpo.export.train_exported``: the same training and score as the trial's). Its image is drawn
as the worker drew it (``hpo.objective``: same caption, same title) and written under the artifact
id the trial recorded, only if the retrained D_s equals the journal's value to the bit; otherwise
nothing is written for that trial and the script says so and exits 1.
"""

from __future__ import annotations

from hpo.cli import limit_blas_threads

limit_blas_threads(1)  # one BLAS thread, as `hpo worker` runs: before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from hpo.group import load_group  # noqa: E402
from hpo.report_content import build_report  # noqa: E402
from hpo.report_figures import sample_grid_rows  # noqa: E402
from hpo.storage import open_storage, storage_url  # noqa: E402
from hpo.trial_config import CONFIG_ARTIFACT_ATTR  # noqa: E402
from hpo.trials import SAMPLES_PNG  # noqa: E402


def redraw(job: tuple[str, int, dict, float, str, Path]) -> str:
    """Train one trial again from its config document; write its image if D_s is the same."""
    import torch

    from hpo.export import train_exported
    from hpo.objective import samples_title, score_caption
    from hpo.plots import plot_samples
    from hpo.target import build_target

    study, number, attrs, stored, config_path, out = job
    torch.set_num_threads(1)
    doc = yaml.safe_load(Path(config_path).read_text())
    score = train_exported(doc, config_path)
    if score.kl.value != stored:
        return f"trial {number}: D_s {score.kl.value!r} retrained, {stored!r} stored; not drawn"
    title = samples_title(study, number, attrs, score_caption(score))
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_samples(build_target(doc["target"]), score.samples,
                           Path(tmp) / f"trial-{number}.png", title=title)
        (out / attrs[SAMPLES_PNG]).write_bytes(png.read_bytes())
    return f"trial {number}: D_s {stored!r} reproduced to the bit; image written"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study")
    p.add_argument("journal")
    p.add_argument("artifacts", type=Path, help="the published folder's artifacts/")
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args()
    group = load_group(open_storage(storage_url(args.journal), create=False), args.study)
    jobs = [(args.study, t.number, dict(t.user_attrs), t.value,
             str(args.artifacts / t.user_attrs[CONFIG_ARTIFACT_ATTR]), args.artifacts)
            for _, trials in sample_grid_rows(group, build_report(group)) for t in trials]
    failed = 0
    with ProcessPoolExecutor(args.processes) as pool:
        for line in pool.map(redraw, jobs):
            print(line, flush=True)
            failed += "not drawn" in line
    print(f"{len(jobs) - failed} of {len(jobs)} images redrawn into {args.artifacts}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
