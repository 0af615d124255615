"""Request and response bodies of the HTTP API (pydantic), with their limits."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

# A pixel of an already MNIST-style digit: finite, in [0, 1].
Pixel = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Row = Annotated[list[Pixel], Field(min_length=28, max_length=28)]
Digit = Annotated[list[Row], Field(min_length=28, max_length=28)]
MAX_BATCH = 256


class PredictJSON(BaseModel):
    """Exactly one of: 28x28 pixels already MNIST-style, or a base64 image file."""

    model_config = ConfigDict(extra="forbid")

    pixels: Digit | None = Field(None, description="28 rows of 28 numbers in [0, 1], white ink")
    image: str | None = Field(
        None, description="a PNG/JPEG/... file, base64 (a data: URL prefix is allowed)"
    )

    @model_validator(mode="after")
    def exactly_one(self) -> PredictJSON:
        if (self.pixels is None) == (self.image is None):
            raise ValueError("give exactly one of 'pixels' or 'image'")
        return self


class ReadJSON(BaseModel):
    """An image of a written number, as a base64 file."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="a PNG/JPEG/... file, base64 (a data: URL prefix is allowed)")


class ReadDigit(BaseModel):
    digit: int
    probability: float
    box: list[int] = Field(description="x, y, width, height of the digit's ink, in pixels")


class ReadMark(BaseModel):
    mark: str = Field(description="'.' (a full stop or a comma), '-' (a dash) or '=', not read")
    box: list[int] = Field(description="x, y, width, height of the mark's ink, in pixels")


class ReadResponse(BaseModel):
    text: str = Field(description="the digits left to right (leading zeros kept)")
    confidence: float = Field(description="the estimated chance that every digit is right")
    unsure: bool = Field(description="confidence below the min_confidence asked for")
    digits: list[ReadDigit]
    written: str = Field(
        description="the digits with the separators and end marks found beside them in "
        "their places ('19.133.-'); a faint mark may be missed"
    )
    marks: list[ReadMark]


class PredictResponse(BaseModel):
    digit: int = Field(description="the most probable digit")
    probability: float
    probabilities: list[float] = Field(description="ten probabilities, digits 0..9")
    preprocessed: list[list[float]] = Field(description="the 28x28 input the model saw")


class Metadata(BaseModel):
    run: str | None
    preset: str | None
    model_file: str
    engine: str
    test_accuracy: float | None
    input_shape: list[int]
    # model_card.md (Markdown), once `mnistlab evaluate` has written it.
    model_card: str | None = None
