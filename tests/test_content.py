from mailer.content import (
    PLACEHOLDERS,
    RLM,
    find_unknown_placeholders,
    markdown_to_html,
    markdown_to_text,
    substitute,
)


def test_unknown_placeholders_are_found_with_their_line() -> None:
    text = "Dear {first_name},\n\nWrite {frist_name} now.\n{ also } fine"
    problems = find_unknown_placeholders(text, PLACEHOLDERS, first_line=5)
    assert [(p.line, p.text) for p in problems] == [(7, "{frist_name}"), (8, "{ also }")]


def test_raw_html_is_never_passed_through() -> None:
    html = markdown_to_html("Hello <script>alert(1)</script> **bold**", rtl=False)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<strong>bold</strong>" in html


def test_placeholders_survive_markdown_links_and_are_escaped_per_part() -> None:
    source = "Dear {first_name}, [act now]({action_url})"
    values = {"first_name": "Ali <b>&", "action_url": "https://act.example.org/a?t=1&x=2"}
    html = substitute(markdown_to_html(source, rtl=False), values, for_html=True)
    assert "Dear Ali &lt;b&gt;&amp;," in html
    assert 'href="https://act.example.org/a?t=1&amp;x=2"' in html
    text = substitute(markdown_to_text(source, rtl=False), values, for_html=False)
    assert text == "Dear Ali <b>&, act now <https://act.example.org/a?t=1&x=2>\n"


def test_latin_runs_in_rtl_text_are_isolated() -> None:
    html = markdown_to_html("العهد الدولي (ICCPR) والناشط", rtl=True)
    assert '(<span dir="ltr">ICCPR</span>)' in html
    assert '<span dir="ltr">' not in markdown_to_html("plain (ICCPR) text", rtl=False)


def test_latin_values_in_rtl_html_are_isolated() -> None:
    html = substitute(
        markdown_to_html("مرحبا {first_name}", rtl=True), {"first_name": "Sara"}, for_html=True, rtl=True
    )
    assert '<span dir="ltr">Sara</span>' in html


def test_plain_text_paragraphs_start_with_rlm_in_rtl() -> None:
    text = markdown_to_text("## عنوان\n\nفقرة أولى\n\n- بند\n- بند آخر", rtl=True)
    lines = [line for line in text.splitlines() if line]
    assert all(line.startswith(RLM) for line in lines)
    assert text == f"{RLM}عنوان\n\n{RLM}فقرة أولى\n\n{RLM}• بند\n{RLM}• بند آخر\n"


SSTI = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ 'x'|attr('format') }}",
    "{{ config }}",
    "{% for i in range(10**9) %}x{% endfor %}",
]


def test_template_syntax_in_campaign_content_is_only_text() -> None:
    """T1: coordinators write Markdown with a fixed set of placeholders; no template language ever runs it."""
    source = "\n\n".join(SSTI)
    html = substitute(markdown_to_html(source, rtl=False), {}, for_html=True)
    text = substitute(markdown_to_text(source, rtl=False), {}, for_html=False)
    for rendered in (html, text):
        assert "{{ config }}" in rendered
        assert "{% for i in range(10**9) %}x{% endfor %}" in rendered  # one x: the loop never ran
        assert "attr(" in rendered
        for evaluated in ("<class", "<function", "builtins", "SECRET", "object at 0x"):
            assert evaluated not in rendered
