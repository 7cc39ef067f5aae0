"""The analysis stage (analyze, projection, store): outlier scores, aligned projections, incremental storage,
bad input, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import assert_close_float32, make_synthetic_run

from spotreview.analysis.analyze import analyze
from spotreview.analysis.projection import align_frames
from spotreview.analysis.store import Analysis, analysis_digest, load_analysis
from spotreview.cli import cli
from spotreview.errors import AnalysisError, RunDirError
from spotreview.rundir.atomic import save_npy

OUTLIER = "img-0035"  # conftest plants the last row far away from everything


def _rotation(deg: float, reflect: bool) -> np.ndarray:
    t = np.deg2rad(deg)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return r @ np.diag([1.0, -1.0]) if reflect else r


# --- results ------------------------------------------------------------------------------


def test_analysis_shapes_files_and_summary(synthetic_run):
    a = analyze(synthetic_run, quiet=True)
    S, n = 5, 36
    assert isinstance(a, Analysis)
    assert a.steps.tolist() == [0, 5, 10, 20, 100] and a.steps.dtype == np.int64
    assert len(a.ids) == n and a.labels.dtype == np.int64 and a.class_names == ["cat", "dog", "frog"]
    assert a.scores.shape == (S, n) and a.scores.dtype == np.float64
    assert a.ranks.shape == (S, n) and a.ranks.dtype == np.int64
    assert all(sorted(r) == list(range(1, n + 1)) for r in a.ranks.tolist())
    assert a.coords.shape == (S, n, 2) and a.coords.dtype == np.float32
    assert a.disparity.shape == (S,) and a.disparity[-1] == pytest.approx(0, abs=1e-12)
    assert a.predictions.shape == (S, n) and a.predictions.dtype == np.int64
    assert a.accuracy[-1] == 1.0 and 0 <= a.knn_accuracy.min() <= a.knn_accuracy.max() <= 1
    assert a.trustworthiness.shape == (S,) and a.trustworthiness.dtype == np.float64
    assert 0.5 < a.trustworthiness.min() <= a.trustworthiness.max() <= 1
    assert a.align == "last" and a.top_k == 8 and a.recomputed == (0, 5, 10, 20, 100)

    files = sorted(p.name for p in synthetic_run.analysis_dir.iterdir())
    assert files == [
        "aligned.npz",
        "dynamics.npz",
        "step-0.npz",
        "step-10.npz",
        "step-100.npz",
        "step-20.npz",
        "step-5.npz",
        "summary.json",
    ]  # no temp files left behind
    summary = json.loads((synthetic_run.analysis_dir / "summary.json").read_text())
    assert summary["align"] == "last" and summary["top_k"] == 8
    assert [s["step"] for s in summary["snapshots"]] == [0, 5, 10, 20, 100]
    assert summary["snapshots"][-1]["top"][0] == OUTLIER and len(summary["snapshots"][-1]["top"]) == 8
    assert [s["trustworthiness"] for s in summary["snapshots"]] == a.trustworthiness.tolist()

    loaded = load_analysis(synthetic_run)
    fields = ("steps", "scores", "ranks", "coords", "disparity", "accuracy", "knn_accuracy", "trustworthiness")
    for field in fields + ("predictions",):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(a, field))
    assert loaded.ids == a.ids and loaded.top_k == 8 and loaded.recomputed == ()


def test_stored_files_keep_their_layout(synthetic_run):
    """The arrays of the step files and aligned.npz, in order and type, as store.py documents them:
    a run analysed by an earlier version reads back without being recomputed."""
    from spotreview.analysis.dynamics import COLUMNS as DYNAMICS_COLUMNS
    from spotreview.analysis.store import FORMAT

    analyze(synthetic_run, quiet=True)
    with np.load(synthetic_run.analysis_dir / "step-20.npz") as f:
        assert f.files == [
            "step",
            "format",
            "embedding_digest",
            "probs_digest",
            "labels_digest",
            "scores",
            "pca",
            "accuracy",
            "knn_accuracy",
            "trustworthiness",
            "predictions",
            "neighbours",
            "label_prob",
            "margin",
        ]
        assert int(f["step"]) == 20 and int(f["format"]) == FORMAT == 3 and len(str(f["embedding_digest"])) == 64
        assert f["scores"].dtype == np.float64 and f["pca"].shape == (36, 2) and f["pca"].dtype == np.float64
        assert f["accuracy"].dtype == f["knn_accuracy"].dtype == np.float64 and f["predictions"].dtype == np.int64
        assert f["trustworthiness"].dtype == np.float64 and f["trustworthiness"].shape == ()
        assert f["neighbours"].shape == (36, 10) and f["neighbours"].dtype == np.int32
        assert f["label_prob"].dtype == f["margin"].dtype == np.float64 and f["margin"].shape == (36,)
    with np.load(synthetic_run.analysis_dir / "aligned.npz") as f:
        assert f.files == ["steps", "coords", "disparity", "align", "top_k", "digests", "format"]
        assert f["steps"].dtype == np.int64 and f["coords"].dtype == np.float32 and f["coords"].shape == (5, 36, 2)
        assert f["disparity"].dtype == np.float64 and str(f["align"]) == "last" and int(f["top_k"]) == 8
    with np.load(synthetic_run.analysis_dir / "dynamics.npz") as f:
        assert f.files[:4] == ["format", "sources", "confidence_threshold", "variability_threshold"]
        assert f.files[4:] == list(DYNAMICS_COLUMNS) and f["data_map_region"].dtype.kind == "U"
        assert f["forgetting_events"].dtype == np.int64 and f["learned_step"].dtype == np.float64
    summary = json.loads((synthetic_run.analysis_dir / "summary.json").read_text())
    assert sorted(summary) == ["align", "data_map", "knn_k", "num_images", "ood_k", "snapshots", "top_k", "trust_k"]
    assert (summary["ood_k"], summary["knn_k"], summary["trust_k"], summary["num_images"]) == (10, 5, 10, 36)
    assert sorted(summary["snapshots"][0]) == [
        "accuracy",
        "disparity",
        "knn_accuracy",
        "step",
        "top",
        "trustworthiness",
    ]


def test_planted_outlier_ranks_first(synthetic_run):
    a = analyze(synthetic_run, quiet=True)
    row = a.ids.index(OUTLIER)
    # cleanlab uses the cosine metric for dim > 3. At step 0 conftest's classes are one
    # isotropic blob, where a constant vector is not atypical in direction; from step 5 on
    # the classes drift apart and the planted row is the clear outlier.
    assert a.ranks[1:, row].tolist() == [1, 1, 1, 1]
    assert a.top(-1)[0] == row and a.scores[-1, row] == a.scores[-1].min()
    assert a.top(-1, 3, exclude=[OUTLIER]).tolist() == a.top(-1, 4)[1:].tolist()


def _fit_score64(x: np.ndarray) -> np.ndarray:
    """A fresh cleanlab fit_score on the features in float64: its float32 path rounds the
    distances (~3e-7), which the median scaling amplifies to a few 1e-6 on tight clusters."""
    from cleanlab.outlier import OutOfDistribution

    return OutOfDistribution().fit_score(features=x.astype(np.float64), verbose=False)


def test_scores_equal_plain_cleanlab_fit_score(synthetic_run):
    """The exact neighbour search gives what a fresh OutOfDistribution.fit_score does."""
    emb = synthetic_run.embedding_path(20)
    x = np.load(emb)
    x[3] = x[4]  # an exact duplicate: cleanlab corrects those, so must we
    save_npy(emb, x)
    a = analyze(synthetic_run, quiet=True)
    for s, step in enumerate(a.steps):
        x = np.load(synthetic_run.embedding_path(int(step)))
        np.testing.assert_allclose(a.scores[s], _fit_score64(x), rtol=0, atol=1e-9)


def test_knn_accuracy_is_leave_one_out(synthetic_run):
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    a = analyze(synthetic_run, quiet=True)
    for s in (0, 2, 4):
        x = np.load(synthetic_run.embedding_path(int(a.steps[s])))
        loo = cross_val_score(KNeighborsClassifier(5, metric="cosine"), x, a.labels, cv=LeaveOneOut())
        assert a.knn_accuracy[s] == pytest.approx(loo.mean())


def test_first_and_last_are_by_step_number(synthetic_run):
    """Step 100 sorts before 20 as text; the last snapshot must still be step 100."""
    from sklearn.decomposition import PCA

    a = analyze(synthetic_run, quiet=True)
    assert a.steps[0] == 0 and a.steps[-1] == 100
    for s, step in ((0, 0), (-1, 100)):
        x = np.load(synthetic_run.embedding_path(step))
        np.testing.assert_allclose(a.scores[s], _fit_score64(x), rtol=0, atol=1e-9)
        probs = np.load(synthetic_run.probs_path(step))
        np.testing.assert_array_equal(a.predictions[s], probs.argmax(1))
    # align="last": the final frame is the reference and stays where PCA put it (to float32
    # rounding at the coordinates' magnitude, ~150 here: the PCA runs in float32)
    x_last = np.load(synthetic_run.embedding_path(100)).astype(np.float64)
    assert_close_float32(a.coords[-1], PCA(2, svd_solver="covariance_eigh").fit_transform(x_last))


# --- alignment -----------------------------------------------------------------------------


@pytest.mark.parametrize("reflect", [False, True])
def test_align_undoes_rotation_and_reflection_keeps_scale(reflect):
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(30, 2)) * [3.0, 1.0] + [5.0, -2.0]
    moved = (ref - ref.mean(0)) @ _rotation(73, reflect) + [-4.0, 9.0]
    bigger = 2.5 * (ref - ref.mean(0)) @ _rotation(-120, reflect)
    coords, disparity = align_frames(np.stack([moved, bigger, ref]), "last")
    assert coords.dtype == np.float32 and coords.shape == (3, 30, 2)
    np.testing.assert_allclose(coords[0], ref, atol=1e-5)
    # real scale is kept: the bigger frame stays 2.5 times as spread out, in the same frame
    np.testing.assert_allclose(coords[1] - ref.mean(0), 2.5 * (ref - ref.mean(0)), atol=1e-4)
    np.testing.assert_allclose(disparity, 0, atol=1e-12)


def test_align_previous_chains_and_none_leaves_frames():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(20, 2))
    noisy = [base + rng.normal(0, 0.05 * i, size=base.shape) for i in range(4)]
    raw = np.stack([f @ _rotation(40 * i, i % 2 == 1) for i, f in enumerate(noisy)])
    coords, disparity = align_frames(raw, "previous")
    np.testing.assert_allclose(coords[0], raw[0], atol=1e-6)  # the first frame starts the chain
    for i in range(1, 4):  # each frame is the best rotation onto the already aligned frame before
        from scipy.linalg import orthogonal_procrustes

        r, _ = orthogonal_procrustes(raw[i] - raw[i].mean(0), coords[i - 1] - coords[i - 1].mean(0))
        np.testing.assert_allclose(coords[i], (raw[i] - raw[i].mean(0)) @ r + coords[i - 1].mean(0), atol=1e-5)
        assert 0 < disparity[i] < 0.05
    assert disparity[0] == pytest.approx(0, abs=1e-12)
    coords, disparity = align_frames(raw, "none")
    np.testing.assert_allclose(coords, raw, atol=1e-6)
    assert np.isnan(disparity).all()


def test_rotated_embeddings_align_onto_each_other(tmp_path):
    """Snapshots whose embeddings are orthogonal transforms of each other land on one picture."""
    run = make_synthetic_run(tmp_path / "run", steps=(0, 10, 20), dim=8)
    x = np.load(run.embedding_path(20))
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(8, 8)))
    save_npy(run.embedding_path(0), (-x).astype(np.float32))  # PCA frame rotated by 180 degrees
    save_npy(run.embedding_path(10), (x @ q @ np.diag([-1] + [1] * 7)).astype(np.float32))
    a = analyze(run, quiet=True)
    from sklearn.decomposition import PCA

    raw0 = PCA(2, svd_solver="covariance_eigh").fit_transform(-x)
    assert not np.allclose(raw0, a.coords[-1], atol=1e-2)  # alignment had work to do
    for s in (0, 1):
        assert_close_float32(a.coords[s], a.coords[-1])  # coordinates up to ~100: float32 PCA rounding
        assert a.disparity[s] == pytest.approx(0, abs=1e-9)
        np.testing.assert_allclose(a.scores[s], a.scores[-1], atol=1e-5)  # cosine kNN is rotation-invariant (float32)


# --- incremental ---------------------------------------------------------------------------


def test_incremental_recomputes_only_changed_snapshots(synthetic_run):
    analyze(synthetic_run, quiet=True)
    step_file = {s: synthetic_run.analysis_dir / f"step-{s}.npz" for s in (0, 5, 10, 20, 100)}
    before = {s: p.stat().st_mtime_ns for s, p in step_file.items()}
    digest = analysis_digest(synthetic_run)

    again = analyze(synthetic_run, quiet=True)
    assert again.recomputed == () and analysis_digest(synthetic_run) == digest  # approval stays valid

    x = np.load(synthetic_run.embedding_path(10))
    save_npy(synthetic_run.embedding_path(10), x * 1.5)
    with pytest.raises(AnalysisError, match=r"step 10 changed since the analysis; run `spotreview analyze"):
        load_analysis(synthetic_run)
    changed = analyze(synthetic_run, quiet=True, align="previous")
    assert changed.recomputed == (10,) and changed.align == "previous"
    after = {s: p.stat().st_mtime_ns for s, p in step_file.items()}
    assert [s for s in before if before[s] != after[s]] == [10]
    assert analysis_digest(synthetic_run) != digest

    # a removed snapshot's step file goes; a new one is computed alone
    synthetic_run.embedding_path(5).unlink()
    synthetic_run.probs_path(5).unlink()
    save_npy(synthetic_run.embedding_path(50), x)
    with pytest.raises(AnalysisError) as e:
        load_analysis(synthetic_run)
    assert str(e.value) == (
        f"the analysis covers steps 0, 5, 10, 20, 100 but embeddings now exist for steps "
        f"0, 10, 20, 50, 100; run `spotreview analyze {synthetic_run.root}` first"
    )
    newer = analyze(synthetic_run, quiet=True)
    assert newer.recomputed == (50,) and newer.steps.tolist() == [0, 10, 20, 50, 100]
    assert not step_file[5].exists()
    assert np.isnan(newer.accuracy[3]) and not np.isnan(newer.accuracy[4])  # step 50 has no probs
    assert newer.predictions is None  # not every snapshot has probabilities


def test_a_rerun_with_nothing_to_compute_realigns_only_when_the_frames_would_differ(synthetic_run):
    """With nothing recomputed the stored frames are reused, but only those aligned the same way
    from the same embeddings; a corrupt aligned.npz is rebuilt."""
    from spotreview.analysis.store import read_step

    first = analyze(synthetic_run, quiet=True)
    raw = np.stack([read_step(synthetic_run, int(s))["pca"] for s in first.steps])
    for align in ("none", "previous", "last"):
        again = analyze(synthetic_run, quiet=True, align=align)
        coords, disparity = align_frames(raw, align)
        assert again.recomputed == () and again.align == align
        np.testing.assert_array_equal(again.coords, coords)
        np.testing.assert_array_equal(again.disparity, disparity)
        np.testing.assert_array_equal(load_analysis(synthetic_run).coords, coords)
    (synthetic_run.analysis_dir / "aligned.npz").write_bytes(b"not a zip")
    rebuilt = analyze(synthetic_run, quiet=True)
    np.testing.assert_array_equal(rebuilt.coords, first.coords)
    np.testing.assert_array_equal(load_analysis(synthetic_run).coords, first.coords)


def test_out_of_date_messages_and_interrupted_run(synthetic_run):
    root = synthetic_run.root
    analyze(synthetic_run, quiet=True)
    save_npy(synthetic_run.probs_path(5), np.load(synthetic_run.probs_path(5))[:, ::-1].copy())
    with pytest.raises(AnalysisError) as e:
        load_analysis(synthetic_run)
    assert str(e.value) == f"probabilities of step 5 changed since the analysis; run `spotreview analyze {root}` first"
    assert analyze(synthetic_run, quiet=True).recomputed == (5,)

    table = pd.read_csv(synthetic_run.eval_csv)
    table.loc[0, "label"] = 2
    table.to_csv(synthetic_run.eval_csv, index=False)
    with pytest.raises(AnalysisError) as e:
        load_analysis(synthetic_run)
    assert str(e.value) == f"labels in eval.csv changed since the analysis; run `spotreview analyze {root}` first"
    assert len(analyze(synthetic_run, quiet=True).recomputed) == 5  # kNN accuracy depends on labels

    # an analyze that fails part-way keeps what it finished: step 0 is not redone next time
    save_npy(synthetic_run.embedding_path(0), np.load(synthetic_run.embedding_path(0)) + 1)
    good20 = np.load(synthetic_run.embedding_path(20))
    save_npy(synthetic_run.embedding_path(20), np.full_like(good20, np.inf))
    with pytest.raises(AnalysisError, match="step 20 have NaN/inf values in 36 of 36 rows"):
        analyze(synthetic_run, quiet=True)
    with pytest.raises(AnalysisError) as e:
        load_analysis(synthetic_run)
    assert str(e.value) == (
        "aligned coordinates of step 0 are older than its scores (an analyze was interrupted); "
        f"run `spotreview analyze {root}` first"
    )
    save_npy(synthetic_run.embedding_path(20), good20)  # back to what step-20.npz was made from
    assert analyze(synthetic_run, quiet=True).recomputed == ()
    load_analysis(synthetic_run)


def test_load_analysis_missing(synthetic_run):
    with pytest.raises(AnalysisError) as e:
        load_analysis(synthetic_run)
    assert str(e.value) == f"{synthetic_run.root} has no analysis; run `spotreview analyze {synthetic_run.root}` first"


# --- bad input -----------------------------------------------------------------------------


def test_no_embeddings(synthetic_run):
    for step in synthetic_run.snapshots():
        synthetic_run.embedding_path(step).unlink()
    with pytest.raises(RunDirError) as e:
        analyze(synthetic_run, quiet=True)
    assert str(e.value) == (  # a run recorded in training keeps no checkpoints: `embed` cannot help
        f"{synthetic_run.root} has no embeddings and no checkpoint-STEP folders to embed; "
        f"create the run with `spotreview finetune --out {synthetic_run.root} --overwrite`"
    )


def test_shapes_differ(synthetic_run):
    x = np.load(synthetic_run.embedding_path(20))
    save_npy(synthetic_run.embedding_path(20), x[:, :8])
    save_npy(synthetic_run.embedding_path(5), x[:-1])
    with pytest.raises(AnalysisError) as e:
        analyze(synthetic_run, quiet=True)
    assert str(e.value) == (
        "embeddings differ in shape between snapshots: (36, 16) at steps 0, 10, 100; "
        "(35, 16) at step 5; (36, 8) at step 20; every snapshot must embed the same images "
        f"to the same dimension; {synthetic_run.reembed_hint(synthetic_run.embeddings_dir)}"
    )


def test_rows_do_not_match_eval_csv(synthetic_run):
    table = pd.read_csv(synthetic_run.eval_csv)
    table.iloc[:-2].to_csv(synthetic_run.eval_csv, index=False)
    with pytest.raises(AnalysisError) as e:
        analyze(synthetic_run, quiet=True)
    assert str(e.value) == (
        "embeddings have 36 rows but eval.csv lists 34 images; "
        f"{synthetic_run.reembed_hint(synthetic_run.embeddings_dir)}"
    )


def test_nan_and_inf_rows_keep_earlier_results(synthetic_run):
    analyze(synthetic_run, quiet=True)
    digest = analysis_digest(synthetic_run)
    x = np.load(synthetic_run.embedding_path(20))
    x[[2, 7], 0] = np.nan
    x[9, 3] = np.inf
    save_npy(synthetic_run.embedding_path(20), x)
    with pytest.raises(AnalysisError) as e:
        analyze(synthetic_run, quiet=True)
    assert str(e.value) == (
        "embeddings of step 20 have NaN/inf values in 3 of 36 rows; "
        f"{synthetic_run.reembed_hint(synthetic_run.embedding_path(20))}"
    )
    assert analysis_digest(synthetic_run) == digest  # nothing stored was touched
    assert not [p for p in synthetic_run.analysis_dir.iterdir() if p.name.startswith(".tmp-")]


def test_too_few_images(tmp_path):
    run = make_synthetic_run(tmp_path / "run", n_per_class=3, steps=(0, 1))
    with pytest.raises(AnalysisError) as e:
        analyze(run, quiet=True)
    assert str(e.value) == (
        "only 9 evaluation images; outlier scores compare each image with its 10 nearest "
        "neighbours, so at least 11 are needed"
    )


def test_bad_probs_and_arguments(synthetic_run):
    save_npy(synthetic_run.probs_path(10), np.ones((30, 3), np.float32))
    with pytest.raises(AnalysisError) as e:
        analyze(synthetic_run, quiet=True)
    assert str(e.value) == (
        f"probabilities of step 10 have shape (30, 3); expected (36, n_classes); "
        f"{synthetic_run.reembed_hint(synthetic_run.probs_path(10))}"
    )
    with pytest.raises(AnalysisError) as e:
        analyze(synthetic_run, align="first", quiet=True)
    assert str(e.value) == "unknown alignment 'first'; expected one of last, previous, none"
    with pytest.raises(AnalysisError) as e:
        analyze(synthetic_run, top_k=0, quiet=True)
    assert str(e.value) == "top_k must be a positive whole number, got 0"


def test_unreadable_embedding_file(synthetic_run):
    synthetic_run.embedding_path(5).write_bytes(b"not numpy")
    with pytest.raises(
        RunDirError,
        match=r"step-5\.npy is unreadable \(.*\); .* keeps no checkpoints to embed again, "
        r"so re-create the run with `spotreview finetune --out ",
    ):
        analyze(synthetic_run, quiet=True)
    synthetic_run.checkpoint_path(5).mkdir()  # with checkpoints, `embed` can make it again
    with pytest.raises(
        RunDirError, match=r"step-5\.npy is unreadable \(.*\); delete .*step-5\.npy and run `spotreview embed "
    ):
        analyze(synthetic_run, quiet=True)


# --- CLI -----------------------------------------------------------------------------------


def test_cli_analyze(synthetic_run):
    root = str(synthetic_run.root)
    result = CliRunner().invoke(cli, ["analyze", root, "--top-k", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["step", "accuracy", "kNN", "acc", "trust", "disparity", "worst", "outlier", "(score)"]
    assert [line.split()[0] for line in lines[1:6]] == ["0", "5", "10", "20", "100"]
    assert lines[5].split()[1] == "1.000" and lines[5].split()[5] == OUTLIER
    assert lines[5].split()[4] == "0.000"  # the reference frame
    assert "5 of 5 snapshots computed" in result.output
    assert lines[-1] == f"Next: spotreview review {root}"
    assert load_analysis(root).top_k == 3

    again = CliRunner().invoke(cli, ["analyze", root, "--align", "none", "-q"])
    assert again.exit_code == 0 and "0 of 5 snapshots computed" in again.output
    assert again.output.splitlines()[5].split()[4] == "-"  # no reference, no disparity


def test_cli_bad_input_is_one_line(synthetic_run):
    root = str(synthetic_run.root)
    x = np.load(synthetic_run.embedding_path(0))
    x[0, 0] = np.nan
    save_npy(synthetic_run.embedding_path(0), x)
    result = CliRunner().invoke(cli, ["analyze", root, "-q"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: embeddings of step 0 have NaN/inf values in 1 of 36 rows; "
        f"{synthetic_run.reembed_hint(synthetic_run.embedding_path(0))}\n"
    )
    result = CliRunner().invoke(cli, ["analyze", root, "--align", "sideways"])
    assert result.exit_code == 2 and "'sideways' is not one of 'last', 'previous', 'none'" in result.output


def test_progress_bar_is_quiet_when_asked(synthetic_run, capsys):
    analyze(synthetic_run, quiet=True)
    assert capsys.readouterr().err == ""
    os.utime(synthetic_run.embedding_path(0))  # same content: nothing recomputed, bar still shown
    analyze(synthetic_run)
    assert "analyze" in capsys.readouterr().err


def test_pca_is_sklearns_covariance_eigh():
    """pca_2d writes sklearn's solver out (no sklearn import per analyze), two eigenvectors only:
    sklearn's coordinates (signs included) to float rounding."""
    from sklearn.decomposition import PCA

    from spotreview.analysis.projection import pca_2d

    rng = np.random.default_rng(0)
    for n, dim, dtype, tol in ((500, 64, np.float32, 1e-5), (40, 5, np.float64, 1e-12), (30, 2, np.float64, 1e-12)):
        x = (2 + rng.normal(size=(n, dim)) * rng.uniform(0.1, 3, dim)).astype(dtype)
        expected = PCA(n_components=2, svd_solver="covariance_eigh").fit_transform(x).astype(np.float64)
        np.testing.assert_allclose(pca_2d(x), expected, rtol=0, atol=tol * np.abs(expected).max())
