"""The mini text world's procedural data: deterministic drawing, captions that match attributes."""
import numpy as np
import pytest

from tasks.mini import shapes


def test_drawing_is_deterministic_and_seed_dependent():
    spec = shapes.ShapeSpec("circle", "red", "black", "swirl")
    a, b = shapes.draw(spec, 3), shapes.draw(spec, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, shapes.draw(spec, 4))
    assert a.shape == (16, 16, 3) and a.min() >= 0 and a.max() <= 1


def test_images_show_their_attributes():
    for spec in shapes.all_specs()[::7]:
        img = shapes.draw(spec, 0)
        bg = np.asarray(shapes.BACKGROUNDS[spec.background])
        corner = img[0, 0]
        assert np.abs(corner - bg).max() < 0.1  # corners stay background
        far = np.abs(img - bg).max(-1) > 0.2
        assert far.sum() >= 10  # a visible shape
        if spec.style == "plain":  # plain shapes are drawn in their colour
            col = np.asarray(shapes.COLOURS[spec.colour])
            assert np.median(np.abs(img[far] - col).max(-1)) < 0.1


def test_captions_name_attributes():
    spec = shapes.ShapeSpec("cross", "blue", "white", "dotted")
    assert shapes.caption(spec) == "a blue cross on a white background in dotted style"
    assert shapes.caption(shapes.ShapeSpec("cross", "blue", "white")) == "a blue cross on a white background"
    assert len({shapes.caption(s) for s in shapes.all_specs()}) == len(shapes.all_specs())


def test_bad_attribute_is_named():
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        shapes.ShapeSpec("hexagon", "red", "black")
