"""Progress bars: off when asked, by argument or by ADVEX_PROGRESS=0."""
from advex import progress


def test_disable_argument_and_environment(monkeypatch):
    monkeypatch.delenv("ADVEX_PROGRESS", raising=False)
    assert progress(range(3), disable=True).disable
    assert not progress(range(3)).disable
    monkeypatch.setenv("ADVEX_PROGRESS", "0")
    assert progress(range(3)).disable
    assert list(progress(range(3), desc="x")) == [0, 1, 2]
