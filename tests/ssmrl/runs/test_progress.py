"""Progress off a terminal: timed plain lines with rate and ETA."""
import io

from ssmrl.runs.progress import PlainProgress


def test_plain_progress_prints_a_line_per_interval_with_rate_and_eta():
    now = [0.0]
    out = io.StringIO()
    bar = PlainProgress(total=1000, desc="drama atari100k/Boxing", initial=100, interval=60.0, file=out,
                        clock=lambda: now[0])
    for _ in range(10):  # 30 s: no line yet
        now[0] += 3.0
        bar.update(10)
    assert out.getvalue() == ""
    bar.set_postfix({"wm/loss": "0.52"})
    for _ in range(10):  # 60 s, 200 steps in all -> one line
        now[0] += 3.0
        bar.update(10)
    line = out.getvalue().strip()
    assert line == "drama atari100k/Boxing: 300/1,000 step (30.0%), 3.33 step/s, ETA 0:03:30, wm/loss=0.52"
    bar.close()  # and a last line at the end
    assert len(out.getvalue().strip().splitlines()) == 2
