"""What a backbone expects as input: size, colour order and normalisation.

Released face-recognition checkpoints differ in exactly these details, and getting one wrong costs
accuracy silently rather than raising an error:

* insightface ``arcface_torch`` models take **RGB** crops of 112x112, scaled as ``(x/255 - 0.5) / 0.5``;
* AdaFace models take **BGR** crops (``inference.py`` flips the channels of the PIL image), with the
  same scaling.

Every backbone in :mod:`fr.backbones` carries an :class:`InputSpec` as ``model.input_spec``, and
:func:`fr.data.transforms.to_input` turns a uint8 RGB batch into the tensor the backbone expects.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


def size_pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``112 -> (112, 112)``; ``(112, 96)`` stays; anything else non-positive or not of length 2 raises."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"input size must be a positive int or an (height, width) pair, got {size!r}")
    return size  # type: ignore[return-value]


@dataclass(frozen=True)
class InputSpec:
    """Input contract of a backbone.

    size:  (height, width) of the aligned crop, in pixels.
    color: channel order of the input tensor, "RGB" or "BGR".
    mean, std: per-channel normalisation applied after scaling pixels to [0, 1], in the order of
           ``color``: ``x = (pixel / 255 - mean) / std``.
    """

    size: tuple[int, int] = (112, 112)
    color: str = "RGB"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self):
        object.__setattr__(self, "size", size_pair(self.size))
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"InputSpec.color must be 'RGB' or 'BGR', got {self.color!r}")
        for field_name in ("mean", "std"):
            value = tuple(float(v) for v in getattr(self, field_name))
            if len(value) != 3:
                raise ValueError(f"InputSpec.{field_name} needs 3 values, got {value!r}")
            object.__setattr__(self, field_name, value)
        if min(self.std) <= 0:
            raise ValueError(f"InputSpec.std must be positive, got {self.std!r}")

    def with_size(self, size: int | tuple[int, int]) -> "InputSpec":
        """The same spec for another crop size."""
        return replace(self, size=size_pair(size))

    def to_dict(self) -> dict:
        return {"size": list(self.size), "color": self.color, "mean": list(self.mean), "std": list(self.std)}


#: insightface arcface_torch: RGB, (x/255 - 0.5)/0.5, 112x112.
INSIGHTFACE_SPEC = InputSpec(size=(112, 112), color="RGB")
#: AdaFace (mk-minchul/AdaFace): BGR, (x/255 - 0.5)/0.5, 112x112.
ADAFACE_SPEC = InputSpec(size=(112, 112), color="BGR")
