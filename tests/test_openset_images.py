import json

import numpy as np
import pytest

from glassware.cli import main
from glassware.errors import SynthesisError
from glassware.synthetic import openset
from glassware.synthetic.openset import KINDS, image_rng, render_openset, write_openset

SMALL = dict(width=160, height=120)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_rgb_deterministic_and_varied(kind):
    k = KINDS.index(kind)
    first = render_openset(kind, image_rng(0, k, 0), **SMALL)
    again = render_openset(kind, image_rng(0, k, 0), **SMALL)
    others = [render_openset(kind, image_rng(0, k, i), **SMALL) for i in range(1, 4)]
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert all(not np.array_equal(first, other) for other in others)


def test_images_are_not_blank_and_keep_odd_sizes():
    """Every kind draws something at any frame size (bad frames may be nearly flat, but not constant)."""
    for k, kind in enumerate(KINDS):
        for i in range(3):
            img = render_openset(kind, image_rng(1, k, i), width=97, height=61)
            assert img.shape == (61, 97, 3) and img.std() > 0.5, (kind, i)


def test_scene_kind_takes_a_domain_and_only_it_does():
    lab = render_openset("scene", image_rng(0, 4, 0), domain="lab", **SMALL)
    stress = render_openset("scene", image_rng(0, 4, 0), domain="stress", **SMALL)
    assert lab.mean() > stress.mean()  # the stress domain is the darker one
    with pytest.raises(SynthesisError, match="only the scene kind"):
        render_openset("text", image_rng(0, 2, 0), domain="lab", **SMALL)
    with pytest.raises(SynthesisError, match="unknown domain"):
        render_openset("scene", image_rng(0, 4, 0), domain="dark", **SMALL)


@pytest.mark.parametrize("call", [
    lambda: render_openset("flask", np.random.default_rng(0)),
    lambda: render_openset("texture", np.random.default_rng(0), width=8),
    lambda: write_openset("/tmp/unused-openset", per_kind=0),
    lambda: write_openset("/tmp/unused-openset", quality=101),
])
def test_bad_arguments_raise_a_clear_error(call):
    with pytest.raises(SynthesisError):
        call()


def test_write_openset_layout_counts_and_bytes(tmp_path):
    summary = write_openset(tmp_path / "a", per_kind=2, seed=5, **SMALL)
    write_openset(tmp_path / "b", per_kind=3, seed=5, **SMALL)
    files = {p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*.jpg")}
    assert files == {f"{kind}/{kind}_5_{i}.jpg" for kind in KINDS for i in range(2)}
    for rel in files:  # image i of a kind is the same whatever per_kind
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    written = json.loads((tmp_path / "a" / "openset.json").read_text())
    assert written == summary
    assert written["counts"] == {kind: 2 for kind in KINDS} and written["total"] == 12
    assert (written["seed"], written["kinds"], written["width"]) == (5, list(KINDS), 160)
    assert written["seconds"] > 0 and (tmp_path / "a" / "contact_sheet.png").is_file()


def test_rerun_is_fine_but_foreign_or_leftover_images_are_refused(tmp_path):
    write_openset(tmp_path / "set", per_kind=1, **SMALL)
    write_openset(tmp_path / "set", per_kind=1, **SMALL)  # the same files again
    with pytest.raises(SynthesisError, match="would not write"):
        write_openset(tmp_path / "set", per_kind=1, seed=1, **SMALL)
    dataset = tmp_path / "dataset"
    (dataset / "A").mkdir(parents=True)
    (dataset / "A" / "A_0_0.jpg").write_bytes(b"")
    with pytest.raises(SynthesisError, match="not an open-set folder"):
        write_openset(dataset, per_kind=1, **SMALL)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SynthesisError, match="not a folder"):
        write_openset(tmp_path / "file", per_kind=1, **SMALL)


def test_scenes_alternate_between_domains(tmp_path, monkeypatch):
    domains = []
    real = openset._scene_with_object

    def recording(rng, width, height, domain):
        domains.append(domain)
        return real(rng, width, height, domain)

    monkeypatch.setattr(openset, "_scene_with_object", recording)
    write_openset(tmp_path, per_kind=4, **SMALL)
    assert domains == ["lab", "stress", "lab", "stress"]


def test_cli_synth_openset_and_its_errors(tmp_path, capsys):
    assert main(["synth-openset", "--out", str(tmp_path / "o"), "--per-kind", "1", "--size", "160x120",
                 "--seed", "3", "--quality", "80"]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and all(kind in out for kind in KINDS)
    assert (tmp_path / "o" / "noise" / "noise_3_0.jpg").is_file()
    assert json.loads((tmp_path / "o" / "openset.json").read_text())["quality"] == 80
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["synth-openset", "--out", str(tmp_path / "busy"), "--per-kind", "1"]) == 2
    assert "not an open-set folder" in capsys.readouterr().err
    assert main(["synth-openset", "--out", str(tmp_path / "e"), "--size", "big"]) == 2
    assert main(["synth-openset", "--out", str(tmp_path / "e"), "--per-kind", "0"]) == 2
    assert not (tmp_path / "e").exists()
