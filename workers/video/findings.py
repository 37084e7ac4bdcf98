"""What a finished video job must tell its user although it succeeded.

A filter run that hid nothing looks like success: the output plays, the summary counts frames.
So a video in which the detector found no face, or in which a face followed inside the picture
was lost and not found again (its mask then ends `hold` frames after it was last seen, and if the
face is still there it shows), finishes with a warning stored on the job, or fails with it when
the job asked for faces (`require_faces`).
"""

from __future__ import annotations

from workers.video.detect import HaarDetector


def face_warning(
    *,
    frames: int,
    with_faces: int,
    lost: int,
    first_lost: int | None,
    detector: str,
    width: int,
    height: int,
) -> str | None:
    """The warning of a run of `frames` frames (None: nothing to say). `first_lost` is the frame
    where the first lost face was last seen."""
    notes = []
    if frames and with_faces == 0:
        note = f"no face was found in any of the {frames} frames"
        if detector == "haar":
            smallest = HaarDetector.smallest_face(width, height)
            note += (
                f": the haar detector sees only upright frontal faces at least {smallest} px"
                f" tall in this {width}x{height} video (10% of the frame); smaller, turned or"
                " tilted faces are not found, use --detector centerface"
            )
        else:
            note += f" by {detector}; the video is returned unfiltered"
        notes.append(note)
    if lost:
        where = f", the first on frame {first_lost}" if first_lost is not None else ""
        notes.append(
            f"{lost} face(s) followed inside the picture were lost and not found again{where}:"
            " each stays covered half a second after it was last seen, then not; check the"
            " output there, or use --detect-every 1"
        )
    return "; ".join(notes) or None
