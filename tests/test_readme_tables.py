"""README tables are rendered from the committed snapshots: a hand-edited number fails here."""

from __future__ import annotations

import pytest

from failbench.readme_tables import BLOCK, ROOT, TableSpec, TableSpecError, readmes, rendered, stale


def test_every_readme_table_matches_what_its_snapshot_renders():
    assert readmes(), "no README holds a rendered table"
    out_of_date = [str(p.relative_to(ROOT)) for p in stale()]
    assert not out_of_date, f"re-render with `failbench table --readmes` and commit: {out_of_date}"


def test_a_hand_edited_number_is_caught():
    path = readmes()[0]
    text = path.read_text()
    block = BLOCK.search(text)
    body = block["body"]
    digit = next(i for i, ch in enumerate(body) if ch.isdigit() and i > body.index("\n"))
    edited = body[:digit] + str((int(body[digit]) + 1) % 10) + body[digit + 1 :]
    text_edited = text[: block.start("body")] + edited + text[block.end("body") :]
    assert rendered(text_edited) != text_edited
    assert rendered(text_edited) == text


@pytest.mark.parametrize(
    "spec",
    [
        "profile=quick",
        "case=relu_blowup",
        "case=relu_blowup profile=quick colour=red",
        "case=x profile=quick verdicts=ok",
    ],
)
def test_a_bad_marker_is_refused_in_one_line(spec):
    with pytest.raises(TableSpecError):
        TableSpec.parse(spec)


def test_a_marker_selects_variants_verdicts_and_metrics():
    spec = TableSpec.parse(
        "case=relu_blowup profile=quick variants=grad_clip,baseline verdicts=symptom,unlearned metrics=accuracy"
    )
    text = rendered(
        f"<!-- failbench table {' '.join(f'{k}={v}' for k, v in _raw(spec).items())} -->\n<!-- end failbench table -->"
    )
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert lines[0] == "| variant | seeds | symptom (95% CI) | unlearned (95% CI) | median accuracy |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| grad_clip", "| baseline"]


def test_a_marker_reads_another_snapshot_of_the_profile():
    """`snapshot=heldout/quick`: the same grid on seeds nobody tuned on, from its own file."""
    text = rendered(
        "<!-- failbench table case=relu_blowup profile=quick snapshot=heldout/quick variants=baseline -->\n"
        "<!-- end failbench table -->"
    )
    assert "| baseline | 10 |" in text
    with pytest.raises(TableSpecError, match="no snapshot"):
        rendered(
            "<!-- failbench table case=relu_blowup profile=quick snapshot=heldout/nothing -->\n"
            "<!-- end failbench table -->"
        )


def _raw(spec: TableSpec) -> dict[str, str]:
    return {
        "case": spec.case,
        "profile": spec.profile,
        "variants": ",".join(spec.variants),
        "verdicts": ",".join(spec.verdicts),
        "metrics": ",".join(spec.metrics),
    }
