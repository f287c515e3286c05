"""Measure `render_markdown` on ordinary and hostile replies (code, math), warm and in a fresh process.

The highlighting in `conversations/rendering.py` is bounded by sizes, not by
time; this prints what those bounds cost. Each figure is the median and the
99th percentile of --runs renders after one unmeasured render, in this
process; "cold" is the first render in each of --cold fresh processes
(imports done, nothing rendered yet: markdown-it, nh3 and the lexer's
regular expressions are built during that render), with whether it came out
highlighted. `--scan` also times every lexer of HIGHLIGHT_LANGUAGES on one
block of hostile code at the size bounds (a few minutes). Prints figures;
asserts nothing. Usage (from the repository root):

    .venv/bin/python bench/render.py [--runs 100] [--cold 5] [--scan]
"""

from __future__ import annotations

import argparse
import json
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.environment import bench_site

ORDINARY = '''Here is a small script that counts the words of a file:

```python
import sys
from collections import Counter


def count_words(path: str) -> Counter[str]:
    """Return how often each word occurs in the file at `path`."""
    with open(path, encoding="utf-8") as text:
        return Counter(word.lower() for line in text for word in line.split())


if __name__ == "__main__":
    for word, n in count_words(sys.argv[1]).most_common(10):
        print(f"{n:6d}  {word}")
```

Run it with:

```bash
python count.py README.md | head -n 5
```

It prints the ten most **common** words; `Counter.most_common` sorts them for you.
Its output as JSON would look like `{"the": 42}`:

```json
{"the": 42, "a": 31, "of": 17}
```
'''


def _hostile() -> str:
    """Return a reply whose code blocks are as slow as the bounds let them be, and then some.

    The first block is the slowest one measured within the bounds (`less` on
    an opener that never closes, lines just under the line limit): it uses
    the whole budget. The blocks after it are the test-suite's hostile
    blocks and more of the first: they must come out plain.
    """
    from conversations import rendering

    width = rendering.MAX_HIGHLIGHT_LINE_CHARS - 1
    lines = rendering.MAX_HIGHLIGHT_CHARS // (width + 1)
    worst = "```less\n" + ("/*a" * (width // 3) + "\n") * lines + "```\n\n"
    return "\n".join(
        [
            worst,
            "```c-objdump\n" + "(" * 20_000 + "\n```\n",
            "```make\n" + ("{" * 999 + "\n") * 20 + "```\n",
            "```html+ng2\n" + ("(" * 999 + "\n") * 10 + "```\n",
            "```mcschema\n<!--\n```\n",
            worst,
            worst,
        ]
    )


MATH = r"""The roots of $ax^2+bx+c=0$ are

\[
x = \frac{-b \pm \sqrt{b^2-4ac}}{2a}
\]

and the area under $f(x)=x$ from 0 to 1 is $$\int_0^1 x\,dx = \frac{1}{2}.$$
Euler's identity \(e^{i\pi}+1=0\) costs nothing, unlike a $5 coffee and a $10 lunch.

$$
\begin{pmatrix} a & b \\ c & d \end{pmatrix}^{-1} = \frac{1}{ad-bc}\begin{pmatrix} d & -b \\ -c & a \end{pmatrix}
$$
"""


def _hostile_math() -> str:
    """Return a reply of formulas as long as the bounds let them be, then unclosed openers.

    Formulas of MAX_FORMULA_CHARS until the reply's MAX_MATH_CHARS budget is
    spent (the rest are shown as code), of the shapes latex2mathml is slowest
    on: nested fractions and nested groups; then a paragraph of `\\(` and `$`
    that never close.
    """
    from conversations import mathml

    size = mathml.MAX_FORMULA_CHARS
    fractions = "\\frac{1}{" * (size // 10) + "x" + "}" * (size // 10)
    groups = "{" * (size // 2 - 1) + "x" + "}" * (size // 2 - 1)
    sums = "x_{1}^{2}+" * (size // 10)
    count = mathml.MAX_MATH_CHARS // size + 2
    blocks = [f"$${shape[:size]}$$" for shape in (fractions, groups, sums) for _ in range(count // 3 + 1)]
    return "\n\n".join([*blocks, "\\( a $b " * 5_000])


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98] if len(ordered) > 1 else ordered[0]
    return f"median {statistics.median(ordered):8.2f}  p99 {p99:8.2f}  max {ordered[-1]:8.2f}  (ms, n={len(ordered)})"


def _warm(text: str, runs: int) -> tuple[list[float], str]:
    from conversations.rendering import render_markdown

    first = str(render_markdown(text))
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        markup = str(render_markdown(text))
        times.append((time.perf_counter() - started) * 1000)
        if markup != first:
            raise RuntimeError("render_markdown gave two different results for one text")
    return times, first


COLD = """
import json, sys, time
import django
django.setup()
from conversations.rendering import render_markdown
text = sys.stdin.read()
started = time.perf_counter()
markup = str(render_markdown(text))
print(json.dumps({"ms": (time.perf_counter() - started) * 1000, "html": markup}))
"""


def _cold(text: str, processes: int) -> tuple[list[float], list[str]]:
    times, outputs = [], []
    for _ in range(processes):
        done = subprocess.run(
            [sys.executable, "-c", COLD], input=text, capture_output=True, text=True, check=True, cwd=BASE_DIR
        )
        result = json.loads(done.stdout)
        times.append(result["ms"])
        outputs.append(result["html"])
    return times, outputs


def _scan() -> list[tuple[float, str, str, str]]:
    """Time `_highlight` for every highlighted language on one block of each hostile pattern at the bounds."""
    from pygments.lexers import find_lexer_class_by_name

    from conversations import rendering

    units = [*string.punctuation, "a", "0", " ", "\t", "ab", "a(", "/*", "/*a", "<!--", "{{", "${", '"a', "'a", "`a"]
    shapes = {
        "long lines": rendering.MAX_HIGHLIGHT_LINE_CHARS,
        "80-char lines": 80,
    }
    results = []
    for language in sorted(rendering.HIGHLIGHT_LANGUAGES):
        lexer_class = find_lexer_class_by_name(language)
        rendering._highlight("x = 1\n", lexer_class)  # Builds the lexer's regular expressions.
        for unit in units:
            for shape, width in shapes.items():
                line = (unit * width)[: width - 1] + "\n"
                code = line * (rendering.MAX_HIGHLIGHT_CHARS // len(line))
                started = time.perf_counter()
                rendering._highlight(code, lexer_class)
                results.append(((time.perf_counter() - started) * 1000, language, unit, shape))
    return sorted(results, reverse=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="measured renders per message (default 100)")
    parser.add_argument("--cold", type=int, default=5, help="fresh processes for the first render (default 5)")
    parser.add_argument("--scan", action="store_true", help="also time every highlighted language on hostile code")
    args = parser.parse_args(argv)

    with bench_site():
        from conversations import rendering

        hostile = _hostile()
        messages = [
            ("ordinary reply", ORDINARY),
            ("hostile reply", hostile),
            ("math reply", MATH),
            ("hostile math reply", _hostile_math()),
        ]
        print(
            f"render_markdown, bounds: {rendering.MAX_HIGHLIGHT_CHARS} chars a block, lines of "
            f"{rendering.MAX_HIGHLIGHT_LINE_CHARS}, {rendering.MAX_HIGHLIGHT_TOTAL_CHARS} chars and "
            f"{rendering.MAX_HIGHLIGHT_BLOCKS} blocks a reply, squared block sizes summing to "
            f"{rendering.MAX_HIGHLIGHT_WORK}"
        )
        for label, text in messages:
            times, warm_html = _warm(text, args.runs)
            blocks = warm_html.count("<pre")
            highlighted = warm_html.count('<pre class="highlight">')
            formulas = warm_html.count("<math")
            print(
                f"  {label} ({len(text)} chars, {highlighted} of {blocks} code blocks highlighted, "
                f"{formulas} formulas as MathML):"
            )
            print(f"    warm:  {_summary(times)}")
            if args.cold:
                cold_times, cold_html = _cold(text, args.cold)
                same = sum(html == warm_html for html in cold_html)
                print(f"    cold:  {_summary(cold_times)}  same HTML as warm in {same} of {len(cold_html)}")
        if args.scan:
            started = time.perf_counter()
            results = _scan()
            print(f"  slowest blocks of {rendering.MAX_HIGHLIGHT_CHARS} chars ({time.perf_counter() - started:.0f} s):")
            for ms, language, unit, shape in results[:15]:
                print(f"    {ms:8.1f} ms  {language:<14} {unit!r:<8} {shape}")
            over = sorted({language for ms, language, *_ in results if ms > 100})
            print(f"  languages with a block over 100 ms: {', '.join(over) or 'none'}")


if __name__ == "__main__":
    main()
