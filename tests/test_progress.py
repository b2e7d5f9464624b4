"""The one progress bar (``hlfnet.progress``): tqdm on stderr, silent when disabled, driven by callbacks."""

from __future__ import annotations

import pytest

from hlfnet.progress import ProgressCallback, progress_bar


def test_the_bar_writes_to_stderr_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(3, "img", enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr() == ("", "")
    with progress_bar(3, "img", desc="predicting", enabled=True) as bar:
        bar.update(3)
    out, err = capsys.readouterr()
    assert out == "" and "predicting" in err and "/3" in err


def test_none_shows_it_only_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(2, enabled=None)  # pytest's captured stderr is not a terminal
    bar.update(2)
    bar.close()
    assert capsys.readouterr().err == ""


def test_the_callback_follows_done_and_closes_at_total(capsys: pytest.CaptureFixture[str]) -> None:
    progress = ProgressCallback("train", "pair", enabled=True)
    assert progress.bar is None  # nothing drawn before the first report
    for done in (1, 2, 4):
        progress(done, 4)
    assert progress.bar.n == 4 and progress.bar.disable  # closed (tqdm disables a closed bar)
    progress.close()  # closing twice is harmless
    assert "train" in capsys.readouterr().err
    bytes_bar = ProgressCallback("ISIC.zip", "B", enabled=True, unit_scale=True)
    bytes_bar(3 * 2**20, None)  # unknown total: stays open until closed
    assert not bytes_bar.bar.disable
    bytes_bar.close()
    assert "3.00MB" in capsys.readouterr().err
