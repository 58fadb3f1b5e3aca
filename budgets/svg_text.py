"""SVG text in WeasyPrint, drawn a run at a time rather than a letter at a time.

WeasyPrint 70 (pinned) lays out and draws every letter of an SVG <text> on its own, so that it can honour a list of
x, y, dx, dy or rotate values per letter, letter-spacing and textLength. A statement's chart has about a hundred
letters of axis labels and legend, each with a single position: drawing them letter by letter took about 4 ms of
a statement's 130. `install()` puts a drop-in for WeasyPrint's `text` function in its place that draws a
text or tspan with at most one value of each as one run (the same font, position, bounding box and text-anchor
handling, and kerning as HTML text gets), and hands anything else to WeasyPrint's own function unchanged.
"""

from __future__ import annotations

from math import inf


def install() -> None:
    """Put `text` in place of WeasyPrint's SVG text function, for the rest of the process. Its dispatch table and the
    name its drawing code compares against (to shift anchored text) must both point at the replacement."""
    _point_svg_text_at(text)


def uninstall() -> None:
    """WeasyPrint's own function again (the statements benchmark measures WeasyPrint alone with it)."""
    from weasyprint.svg.text import text as weasyprint_text

    _point_svg_text_at(weasyprint_text)


def _point_svg_text_at(function) -> None:
    import weasyprint.svg as svg_module
    from weasyprint.svg.text import text as weasyprint_text

    for tag, current in list(svg_module.TAGS.items()):
        if current in (weasyprint_text, text):
            svg_module.TAGS[tag] = function
    svg_module.text = function


def text(svg, node, font_size):
    """WeasyPrint's `text`, drawing a run at once where the node allows it."""
    if not _draw_as_one_run(svg, node, font_size):
        from weasyprint.svg.text import text as weasyprint_text

        weasyprint_text(svg, node, font_size)


def _single(svg, node, name: str, font_size: float, extent: float) -> tuple[bool, float | None]:
    """(whether the attribute holds at most one length, that length or None)."""
    from weasyprint.svg.utils import normalize, size

    if name not in node.attrib:
        return True, None
    values = normalize(node.attrib[name]).strip().split(" ")
    if len(values) != 1:
        return False, None
    return True, size(values[0], font_size, extent)


def _draw_as_one_run(svg, node, font_size) -> bool:
    """Draw the node as WeasyPrint's `text` would, as one run of glyphs; False (having drawn nothing) when the node
    needs per-letter placement."""
    from weasyprint.draw.text import draw_emojis, draw_first_line
    from weasyprint.matrix import Matrix
    from weasyprint.svg.bounding_box import extend_bounding_box
    from weasyprint.svg.text import TextBox
    from weasyprint.text.line_break import split_first_line

    if not node.text or "rotate" in node.attrib or "textLength" in node.attrib:
        return False
    if svg.length(node.get("letter-spacing"), font_size):
        return False
    positions = []
    across, down = svg.inner_width, svg.inner_height
    for name, extent in (("x", across), ("y", down), ("dx", across), ("dy", down)):
        single, value = _single(svg, node, name, font_size, extent)
        if not single:
            return False
        positions.append(value)
    x, y, dx, dy = positions
    y_align = _baseline_shift(node, font_size)
    if y_align is None:
        return False

    style = _text_style(svg, node, font_size)
    layout, _, resume_index, width, height, baseline = split_first_line(node.text, style, svg.context, inf, 0)
    if resume_index is not None:  # more than one line (cannot happen after SVG white-space handling): be safe
        return False

    # The cursor moves exactly as it does for WeasyPrint's first letter, then past the whole run.
    if x:
        svg.cursor_d_position[0] = 0
    if y:
        svg.cursor_d_position[1] = 0
    svg.cursor_d_position[0] += dx or 0
    svg.cursor_d_position[1] += dy or 0
    x = svg.cursor_position[0] if x is None else x
    y = svg.cursor_position[1] if y is None else y
    svg.cursor_position = x + width, y
    x_position = x + svg.cursor_d_position[0]
    y_position = y + svg.cursor_d_position[1] + y_align
    points = ((x_position, y_position - baseline), (x_position + width, y_position - baseline + height))
    node.text_bounding_box = extend_bounding_box(node.text_bounding_box, points)

    svg.stream.push_state()
    fill, stroke = svg.set_graphical_state(node, font_size)
    svg.stream.begin_text()
    layout.reactivate(style)
    svg.fill_stroke(fill, stroke, text=True)
    text_box = TextBox(layout, style)
    text_box.baseline = baseline
    emojis = draw_first_line(svg.stream, text_box, "none", "none", Matrix(d=-1, e=x_position, f=y_position))
    svg.stream.end_text()
    svg.stream.pop_state()
    draw_emojis(svg.stream, style, x, y, emojis)
    return True


def _text_style(svg, node, font_size):
    """The style WeasyPrint's `text` builds for a node (it does not use the cascade's computed values either)."""
    from weasyprint.css.properties import INITIAL_VALUES
    from weasyprint.svg.text import Style

    style = Style()
    style.update(INITIAL_VALUES)
    style.font_config = svg.font_config
    style["font_family"] = [font.strip("\"'") for font in node.get("font-family", "sans-serif").split(",")]
    style["font_style"] = node.get("font-style", "normal")
    weight = node.get("font-weight", 400)
    if node.get("direction") in ("ltr", "rtl"):
        style["direction"] = node.get("direction")
    if weight == "normal":
        weight = 400
    elif weight == "bold":
        weight = 700
    else:
        try:
            weight = int(weight)
        except ValueError:
            weight = 400
    style["font_weight"] = weight
    style["font_size"] = font_size
    return style


def _baseline_shift(node, font_size) -> float | None:
    """WeasyPrint's baseline shift for the node; None for display-anchor, which depends on the letters' height."""
    ascent, descent = font_size * 0.8, font_size * 0.2  # WeasyPrint's own approximation
    display_anchor = node.get("display-anchor")
    baseline = node.get("dominant-baseline", node.get("alignment-baseline"))
    if display_anchor is not None:
        return None
    if baseline in ("central", "middle"):
        return (ascent + descent) / 2 - descent
    if baseline in ("text-before-edge", "before_edge", "top", "hanging", "text-top"):
        return ascent
    if baseline in ("text-after-edge", "after_edge", "bottom", "text-bottom"):
        return -descent
    return 0
